"""Helpers for the volunteers tests."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN

# Points in Shinan district (WGS-84), about 700 m apart.
MAY_FOURTH_SQUARE = (36.0621, 120.3847)
ZHANQIAO_PIER = (36.0605, 120.3190)
SHANGHAI = (31.2304, 121.4737)

_numbers = itertools.count(1)


def volunteer_body(**changes: Any) -> dict[str, Any]:
    """A valid POST /v1/volunteers body with a unique certificate number."""
    today = dt.date.today()
    body: dict[str, Any] = {
        "name": "王小明",
        "phone": "+86 138 0013 8000",
        "certificate": {
            "number": f"RC-2026-{next(_numbers):06d}-{id(changes)}",
            "issuer": "青岛市红十字会",
            "issued_on": (today - dt.timedelta(days=100)).isoformat(),
            "expires_on": (today + dt.timedelta(days=600)).isoformat(),
        },
        "travel_mode": "walk",
    }
    body.update(changes)
    return body


async def create_volunteer(client: TestClient, **changes: Any) -> dict[str, Any]:
    """A volunteer through the admin API (its token included)."""
    resp = await client.post("/v1/volunteers", json=volunteer_body(**changes), headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return await resp.json()


def location(point: tuple[float, float], **extra: Any) -> dict[str, Any]:
    """A location object."""
    return {"lat": point[0], "lng": point[1], **extra}
