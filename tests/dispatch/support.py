"""Helpers of the dispatch tests: a center, volunteers on duty, AEDs, alerts."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from geo import Crs, TravelMode, from_wgs84
from tests.conftest import ADMIN
from tests.helpers import bearer, create_center, insert_volunteer
from volunteers.eligibility import VolunteerMeta
from volunteers.positions import set_on_duty

# A square in Shinan district (WGS-84): the patient in most tests.
PATIENT = (36.0640, 120.3800)
_M_PER_DEG = 6_371_008.8 * math.pi / 180
_counter = itertools.count(1)


def offset(
    at: tuple[float, float], *, north_m: float = 0.0, east_m: float = 0.0
) -> tuple[float, float]:
    """A point some metres north and east of another."""
    lat, lng = at
    return (
        lat + north_m / _M_PER_DEG,
        lng + east_m / (_M_PER_DEG * math.cos(math.radians(lat))),
    )


def location(at: tuple[float, float], crs: Crs = Crs.WGS84) -> dict[str, Any]:
    """A location object of the API, in the given system."""
    lat, lng = at if crs is Crs.WGS84 else from_wgs84(at[0], at[1], crs)
    return {"lat": lat, "lng": lng, "crs": crs.value}


@dataclass(frozen=True)
class Center:
    id: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Volunteer:
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


async def center(client: TestClient, name: str = "Qingdao 120") -> Center:
    """A dispatch center and its API key headers."""
    body = await create_center(client, name=name)
    return Center(id=body["id"], headers=bearer(body["api_key"]))


async def volunteer(
    client: TestClient,
    pg: asyncpg.Connection,
    at: tuple[float, float] | None,
    *,
    travel_mode: str = "walk",
    quiet_hours: str | None = None,
) -> Volunteer:
    """A volunteer, checked in at `at` (None: off duty)."""
    vid, token = await insert_volunteer(pg, travel_mode=travel_mode, quiet_hours=quiet_hours)
    vol = Volunteer(id=vid, token=token)
    if at is not None:
        await check_in(client, vol, at)
    return vol


async def check_in(client: TestClient, vol: Volunteer, at: tuple[float, float]) -> None:
    """PUT /v1/me/duty on duty at a place."""
    resp = await client.put(
        "/v1/me/duty", json={"on_duty": True, "location": location(at)}, headers=vol.headers
    )
    assert resp.status == 200, await resp.text()


async def aed(client: TestClient, at: tuple[float, float], **fields: Any) -> str:
    """An AED through the inventory API; its id."""
    body = {"name": f"AED {next(_counter)}", "location": location(at), "indoor": False, **fields}
    resp = await client.post("/v1/aeds", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


def alert_body(
    at: tuple[float, float] = PATIENT, crs: Crs = Crs.WGS84, **extra: Any
) -> dict[str, Any]:
    """An alert body with a fresh external id."""
    return {
        "external_id": f"QD120-{next(_counter)}",
        "location": location(at, crs),
        "address": "青岛市市南区某路 1 号",
        "category": "cardiac_arrest",
        **extra,
    }


async def post_alert(
    client: TestClient, c: Center, body: dict[str, Any], query: str = ""
) -> ClientResponse:
    """POST /v1/alerts."""
    return await client.post(f"/v1/alerts{query}", json=body, headers=c.headers)


async def raise_alert(client: TestClient, c: Center, **extra: Any) -> dict[str, Any]:
    """A new alert at the patient; the plan (asserting a 201)."""
    resp = await post_alert(client, c, alert_body(**extra))
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


def responders(plan: dict[str, Any]) -> dict[str, str]:
    """volunteer id -> role of a plan."""
    return {r["volunteer_id"]: r["role"] for r in plan["responders"]}


def local_hour_window(tz_name: str = "Asia/Shanghai", *, around: bool) -> str:
    """ "HH:00-HH:00" containing now (around=True) or not containing now (False)."""
    from zoneinfo import ZoneInfo

    hour = dt.datetime.now(ZoneInfo(tz_name)).hour
    if around:
        return f"{(hour - 1) % 24:02d}:00-{(hour + 2) % 24:02d}:00"
    return f"{(hour + 3) % 24:02d}:00-{(hour + 5) % 24:02d}:00"


async def ghost_on_duty(redis: Redis, at: tuple[float, float]) -> None:
    """A live walking position of a volunteer PostgreSQL does not know (Redis outlived a
    rebuilt database)."""
    meta = VolunteerMeta(
        travel_mode=TravelMode.WALK,
        cert_expires_on=dt.date.today() + dt.timedelta(days=30),
        status="active",
    )
    lat, lng = at
    await set_on_duty(redis, volunteer_id="vol_ghost", meta=meta, lat=lat, lng=lng, now=time.time())
