"""Helpers shared by the AED tests (not a test module)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from rescue.auth import hash_token
from rescue.ids import new_id
from rescue.settings import generate_token
from tests.conftest import ADMIN
from tests.helpers import wait_until  # noqa: F401 - the AED tests import it from here

# WGS-84 points inside Qingdao's districts.
SHINAN = {"lat": 36.0622, "lng": 120.3844}  # 370202
SHIBEI = {"lat": 36.09, "lng": 120.37}  # 370203
LAOSHAN = {"lat": 36.10, "lng": 120.47}  # 370212
HUANGDAO = {"lat": 35.96, "lng": 120.18}  # 370211


def aed_body(**overrides: Any) -> dict[str, Any]:
    """A valid POST /v1/aeds body."""
    body: dict[str, Any] = {
        "name": "五四广场 AED",
        "address": "青岛市市南区东海西路",
        "location": dict(SHINAN),
        "venue_type": "public",
        "indoor": False,
        "level": 0,
        "access_note": "北侧服务亭",
        "opening_hours": "24/7",
        "status": "active",
        "model": "Philips HeartStart FRx",
        "serial_no": None,
        "pads_expire_on": "2030-01-01",
        "battery_expire_on": "2030-06-01",
        "last_inspected_on": None,
        "owner": {"name": "市南区卫健局", "phone": "0532-8288 0000"},
    }
    body.update(overrides)
    return body


async def create_aed(client: TestClient, **overrides: Any) -> dict[str, Any]:
    """Create an AED through the API and return it."""
    resp = await client.post("/v1/aeds", json=aed_body(**overrides), headers=ADMIN)
    assert resp.status == 201, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def dispatch_headers(client: TestClient) -> dict[str, str]:
    """The headers of a new dispatch center's API key."""
    resp = await client.post("/v1/dispatch-centers", json={"name": "Qingdao 120"}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['api_key']}"}


async def volunteer_headers(pg: asyncpg.Connection) -> dict[str, str]:
    """The headers of a volunteer inserted directly into the registry."""
    token = generate_token("vol")
    await pg.execute(
        """INSERT INTO volunteers (id, name, phone, cert_number, cert_issuer, cert_issued_on,
                                   cert_expires_on, token_hash)
           VALUES ($1, '张三', '13800000000', $2, '红十字会', '2024-01-01', '2099-01-01', $3)""",
        new_id("vol"),
        new_id("cert"),
        hash_token(token),
    )
    return {"Authorization": f"Bearer {token}"}


async def stored_aeds(pg: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every stored AED row, by id (to compare before and after a request)."""
    return [dict(r) for r in await pg.fetch("SELECT * FROM aeds ORDER BY id")]
