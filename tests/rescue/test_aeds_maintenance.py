"""The maintenance report: expiring consumables, stale inspections, AEDs out of service."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN
from tests.rescue.aeds_support import create_aed, dispatch_headers


def day(offset: int) -> str:
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    return (today + dt.timedelta(days=offset)).isoformat()


async def test_maintenance_report(client: TestClient) -> None:
    fine = {
        "pads_expire_on": day(400),
        "battery_expire_on": day(400),
        "last_inspected_on": day(-10),
    }
    pads = await create_aed(client, name="pads", **{**fine, "pads_expire_on": day(10)})
    battery = await create_aed(
        client,
        name="battery",
        **{**fine, "battery_expire_on": day(-5), "last_inspected_on": day(-400)},
    )
    never = await create_aed(client, name="never", **{**fine, "last_inspected_on": None})
    repair = await create_aed(client, name="repair", status="maintenance", **fine)
    missing = await create_aed(client, name="missing", status="missing", **fine)
    await create_aed(client, name="fine", **fine)
    later = await create_aed(client, name="later", **{**fine, "pads_expire_on": day(40)})
    retired = await create_aed(client, name="retired", **{**fine, "pads_expire_on": day(-1)})
    await client.delete(f"/v1/aeds/{retired['id']}", headers=ADMIN)

    resp = await client.get("/v1/aeds/maintenance", headers=await dispatch_headers(client))
    assert resp.status == 200
    items = (await resp.json())["items"]
    problems = {item["aed"]["id"]: item["problems"] for item in items}
    assert problems == {
        pads["id"]: [f"pads expire {day(10)}"],
        battery["id"]: [
            f"battery expired {day(-5)}",
            f"last inspected {day(-400)} (over a year ago)",
        ],
        never["id"]: ["never inspected"],
        repair["id"]: ["status maintenance"],
        missing["id"]: ["status missing"],
    }
    # Most urgent first: the overdue inspection, then what is due today (by id), then pads.
    today_ids = sorted([never["id"], repair["id"], missing["id"]])
    assert [item["aed"]["id"] for item in items] == [battery["id"], *today_ids, pads["id"]]
    assert items[0]["aed"]["name"] == "battery"

    wider = await (await client.get("/v1/aeds/maintenance?within_days=60", headers=ADMIN)).json()
    assert [f"pads expire {day(40)}"] in [item["problems"] for item in wider["items"]]
    assert later["id"] in [item["aed"]["id"] for item in wider["items"]]
    gcj = await (await client.get("/v1/aeds/maintenance?crs=gcj02", headers=ADMIN)).json()
    assert {item["aed"]["location"]["crs"] for item in gcj["items"]} == {"gcj02"}


@pytest.mark.parametrize("value", ["-1", "x", "3651", "1.5"])
async def test_within_days_is_validated(client: TestClient, value: str) -> None:
    resp = await client.get(f"/v1/aeds/maintenance?within_days={value}", headers=ADMIN)
    assert resp.status == 400
    assert (await resp.json())["error"]["details"][0]["field"] == "within_days"
