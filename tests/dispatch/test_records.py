"""The incident record: milestones and intervals from a scripted timeline; the reports."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from dispatch.records import CSV_COLUMNS, build_record
from rescue.ids import new_id
from tests.conftest import ADMIN
from tests.helpers import bearer, create_center, insert_volunteer

T0 = dt.datetime(2026, 6, 1, 2, 0, tzinfo=dt.UTC)  # 10:00 in Qingdao


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def entry(seconds: float, kind: str, actor: str = "system", **data: Any) -> dict[str, Any]:
    return {"at": at(seconds), "type": kind, "actor": actor, "data": data}


def incident_row(**changes: Any) -> dict[str, Any]:
    return {
        "id": "inc_1",
        "external_id": "QD120-1",
        "center_id": "dc_1",
        "exercise": False,
        "status": "closed",
        "category": "cardiac_arrest",
        "district": "市南区",
        "reported_at": at(0),
        "created_at": at(60),
        "closed_at": at(1200),
        "outcome": {"ems_arrived_at": at(590).isoformat(), "transported": True, "survived": True},
        **changes,
    }


# A: fetches the AED; B: goes straight; the dispatcher guides a bystander first.
SCRIPT = [
    entry(60, "offers_sent", offers=[{"offer_id": "o1"}, {"offer_id": "o2"}, {"offer_id": "o3"}]),
    entry(75, "offer_accepted", "vol_a", volunteer_id="vol_a"),
    entry(90, "offer_accepted", "vol_b", volunteer_id="vol_b"),
    entry(120, "cpr_started", "gp_disp", role="dispatcher", volunteer_id=None),
    entry(150, "aed_collected", "vol_a", volunteer_id="vol_a"),
    entry(200, "arrived", "vol_b", volunteer_id="vol_b"),
    entry(230, "cpr_started", "vol_b", volunteer_id="vol_b"),
    entry(260, "aed_arrived", "vol_a", volunteer_id="vol_a"),
    entry(280, "pads_attached", "vol_a", volunteer_id="vol_a"),
    entry(300, "shock_delivered", "vol_a", volunteer_id="vol_a"),
    entry(420, "shock_delivered", "vol_a", volunteer_id="vol_a"),
    entry(500, "rosc", "vol_b", volunteer_id="vol_b"),
    entry(600, "ems_arrived", "gp_disp", role="dispatcher", volunteer_id=None),
    entry(700, "handed_over", "vol_b", volunteer_id="vol_b"),
]


def test_the_record_and_its_intervals_from_a_scripted_timeline() -> None:
    record = build_record(incident_row(), list(reversed(SCRIPT)))
    times = record.times
    assert times["call"] == at(0) and times["alert"] == at(60)
    assert times["first_offer"] == at(60) and times["first_acceptance"] == at(75)
    # The dispatcher's bystander CPR is the first compression, not a responder on scene.
    assert times["first_compression"] == at(120)
    assert times["on_scene"] == at(200)
    assert times["aed_on_scene"] == at(260) and times["pads_attached"] == at(280)
    assert times["first_shock"] == at(300) and times["rosc"] == at(500)
    # The outcome's EMS time is earlier than the marker: the earlier one counts.
    assert times["ems_arrival"] == at(590)
    assert record.intervals == {
        "call_to_alert_s": 60,
        "alert_to_first_offer_s": 0,
        "alert_to_first_acceptance_s": 15,
        "alert_to_on_scene_s": 140,
        "alert_to_first_compression_s": 60,
        "alert_to_aed_on_scene_s": 200,
        "alert_to_pads_attached_s": 220,
        "alert_to_first_shock_s": 240,
        "alert_to_ems_arrival_s": 530,
        "call_to_first_compression_s": 120,
        "call_to_first_shock_s": 300,
        "call_to_ems_arrival_s": 590,
        "on_scene_to_first_compression_s": -80,
        "aed_on_scene_to_first_shock_s": 40,
        "on_scene_before_ems_s": 390,
    }
    assert (record.offered, record.accepted, record.shocks) == (3, 2, 2)
    assert record.rosc is True and record.on_scene_before_ems is True
    assert record.outcome("transported") is True and record.outcome("survived") is True


def test_what_was_not_reported_stays_unknown() -> None:
    row = incident_row(reported_at=None, outcome={"rosc": False}, status="closed")
    record = build_record(row, [entry(61, "offers_sent", offers=[])])
    assert record.times["call"] is None and record.times["on_scene"] is None
    assert record.times["ems_arrival"] is None
    assert record.intervals["call_to_alert_s"] is None
    assert record.intervals["alert_to_first_offer_s"] == 1
    assert record.rosc is False and record.on_scene_before_ems is None
    assert record.outcome("survived") is None
    # Pads attached without an aed_arrived marker: the AED was evidently there.
    record = build_record(row, [entry(100, "pads_attached", "v", volunteer_id="v")])
    assert record.times["aed_on_scene"] == at(100) and record.times["on_scene"] == at(100)
    assert build_record(incident_row(outcome=None), []).rosc is None


async def _insert(
    pg: asyncpg.Connection,
    center_id: str,
    *,
    offset_s: float,
    exercise: bool = False,
    status: str = "closed",
    outcome: dict[str, Any] | None = None,
    script: list[dict[str, Any]] | None = None,
) -> str:
    incident_id = new_id("inc")
    created = at(offset_s + 60)
    await pg.execute(
        """INSERT INTO incidents (id, center_id, external_id, request_hash, lat, lng, exercise,
               status, reported_at, created_at, closed_at, outcome, time_budget_s,
               budget_now_s, plan, category)
           VALUES ($1, $2, $3, $4, 36.064, 120.38, $5, $6, $7, $8, $9, $10::jsonb, 300, 300,
                   '{}'::jsonb, 'cardiac_arrest')""",
        incident_id,
        center_id,
        f"QD120-{incident_id[-6:]}",
        hashlib.sha256(incident_id.encode()).digest(),
        exercise,
        status,
        at(offset_s),
        created,
        None if status == "open" else at(offset_s + 1200),
        json.dumps(outcome) if outcome is not None else None,
    )
    for e in script or []:
        await pg.execute(
            "INSERT INTO timeline (incident_id, at, type, actor, data)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)",
            incident_id,
            e["at"] + dt.timedelta(seconds=offset_s),
            e["type"],
            e["actor"],
            json.dumps(e["data"]),
        )
    return incident_id


async def test_reports_list_records_as_json_and_csv_and_summarize(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    center = await create_center(client)
    outcome = {"ems_arrived_at": at(590).isoformat(), "transported": True, "survived": True}
    full = await _insert(pg, center["id"], offset_s=0, outcome=outcome, script=SCRIPT)
    drill = await _insert(
        pg, center["id"], offset_s=30, exercise=True, outcome={"rosc": True}, script=SCRIPT[:3]
    )
    cancelled = await _insert(pg, center["id"], offset_s=60, status="cancelled")
    outside = await _insert(pg, center["id"], offset_s=-86_400 * 3)

    query = "from=2026-06-01&to=2026-06-01"  # the whole local day (Asia/Shanghai)
    resp = await client.get(f"/v1/reports/incidents?{query}&limit=2", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    first = await resp.json()
    assert first["from"] == "2026-06-01T00:00:00+08:00"
    assert first["to"] == "2026-06-02T00:00:00+08:00"
    resp = await client.get(
        f"/v1/reports/incidents?{query}&limit=2&cursor={first['next_cursor']}", headers=ADMIN
    )
    second = await resp.json()
    assert second["next_cursor"] is None
    records = {r["incident_id"]: r for r in first["items"] + second["items"]}
    assert set(records) == {full, drill, cancelled} and outside not in records
    rec = records[full]
    assert rec["times"]["first_compression"] == at(120).isoformat()
    assert rec["intervals_s"]["alert_to_on_scene_s"] == 140
    assert rec["responders"] == {"offered": 3, "accepted": 2} and rec["shocks"] == 2
    assert rec["outcome"] == {
        "rosc": True,
        "transported": True,
        "survived": True,
        "on_scene_before_ems": True,
    }
    assert records[drill]["exercise"] is True

    resp = await client.get(f"/v1/reports/incidents?{query}&exercise=false", headers=ADMIN)
    assert {r["incident_id"] for r in (await resp.json())["items"]} == {full, cancelled}

    resp = await client.get(f"/v1/reports/incidents?{query}&format=csv", headers=ADMIN)
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert tuple(rows[0]) == CSV_COLUMNS
    by_id = {r["incident_id"]: r for r in rows}
    assert set(by_id) == {full, drill, cancelled}
    assert by_id[full]["alert_to_first_shock_s"] == "240"
    assert by_id[full]["first_shock_at"] == at(300).isoformat()
    assert by_id[full]["rosc"] == "true" and by_id[cancelled]["rosc"] == ""
    assert by_id[drill]["exercise"] == "true"

    resp = await client.get(f"/v1/reports/summary?{query}", headers=ADMIN)
    assert resp.status == 200
    summary = await resp.json()
    real, drills = summary["real"], summary["exercises"]
    assert real["alerts"] == 2 and real["cancelled"] == 1 and real["closed"] == 1
    assert real["accepted"] == 1 and real["responders_accepted"] == 2
    assert real["on_scene"] == 1 and real["on_scene_before_ems"] == 1
    assert real["aed_attached"] == 1 and real["shocked"] == 1 and real["shocks"] == 2
    assert real["rosc"] == 1 and real["survived"] == 1 and real["transported"] == 1
    assert real["median_s"]["alert_to_on_scene_s"] == 140
    assert drills["alerts"] == 1 and drills["accepted"] == 1 and drills["rosc"] == 1
    assert drills["on_scene"] == 0 and drills["median_s"]["alert_to_on_scene_s"] is None


async def test_reports_are_for_administrators_and_check_their_parameters(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    center = await create_center(client)
    _, volunteer_token = await insert_volunteer(pg)
    for path in ("/v1/reports/incidents", "/v1/reports/summary"):
        for headers in (bearer(center["api_key"]), bearer(volunteer_token)):
            assert (await client.get(path, headers=headers)).status == 403
        assert (await client.get(path)).status == 401
        resp = await client.get(path, headers=ADMIN)
        assert resp.status == 200
    bad = {
        "from=yesterday": "from",
        "to=2026-13-01": "to",
        "from=2026-06-02T00:00:00": "from",
        "from=2026-06-02&to=2026-06-01": "from",
        "format=xml": "format",
        "exercise=maybe": "exercise",
    }
    for query, field in bad.items():
        resp = await client.get(f"/v1/reports/incidents?{query}", headers=ADMIN)
        assert resp.status == 400, query
        assert (await resp.json())["error"]["details"][0]["field"] == field
    resp = await client.get(
        "/v1/reports/summary?from=2026-06-01T00:00:00Z&to=2026-06-01T09:00:00+08:00",
        headers=ADMIN,
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["real"]["alerts"] == 0 and body["to"] == "2026-06-01T09:00:00+08:00"
