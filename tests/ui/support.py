"""Helpers of the browser tests: people and things made through the API, places in Qingdao."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import math
from typing import Any

from aiohttp.test_utils import TestClient

from rescue.area import load_service_area
from rescue.demo.aeds import generate_aeds
from tests.conftest import ADMIN
from tests.helpers import create_center

# A square in Shinan district (WGS-84): where the patient collapses.
PATIENT = (36.0640, 120.3800)
_M_PER_DEG = 6_371_008.8 * math.pi / 180
_numbers = itertools.count(1)


def offset(
    at: tuple[float, float], *, north_m: float = 0, east_m: float = 0
) -> tuple[float, float]:
    """A point some metres north and east of another."""
    lat, lng = at
    return (
        lat + north_m / _M_PER_DEG,
        lng + east_m / (_M_PER_DEG * math.cos(math.radians(lat))),
    )


async def dispatch_key(client: TestClient) -> str:
    """A new dispatch center's API key."""
    return str((await create_center(client))["api_key"])


async def volunteer(client: TestClient, name: str = "王小明") -> dict[str, Any]:
    """A volunteer with a valid certificate (its token included)."""
    today = dt.date.today()
    body = {
        "name": name,
        "phone": "+86 138 0013 8000",
        "certificate": {
            "number": f"UI-{next(_numbers):06d}-{id(name)}",
            "issuer": "青岛市红十字会",
            "issued_on": (today - dt.timedelta(days=100)).isoformat(),
            "expires_on": (today + dt.timedelta(days=600)).isoformat(),
        },
        "travel_mode": "walk",
    }
    resp = await client.post("/v1/volunteers", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def aed(client: TestClient, at: tuple[float, float], **fields: Any) -> dict[str, Any]:
    """An AED, open around the clock, through the API."""
    body = {
        "name": f"五四广场 AED {next(_numbers)}",
        "address": "青岛市市南区东海西路 35 号",
        "location": {"lat": at[0], "lng": at[1]},
        "venue_type": "public",
        "indoor": False,
        "opening_hours": "24/7",
        "pads_expire_on": "2030-01-01",
        "battery_expire_on": "2030-06-01",
        "last_inspected_on": dt.date.today().isoformat(),
        **fields,
    }
    resp = await client.post("/v1/aeds", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


def demo_aeds_csv() -> bytes:
    """The synthetic demo inventory (1,983 AEDs) as an import CSV."""
    rows = generate_aeds(load_service_area())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(rows[0]._fields)
    for row in rows:
        writer.writerow(
            "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for v in row
        )
    return out.getvalue().encode()
