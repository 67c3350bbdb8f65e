"""Missions: insurance cover, reward rules, legal aid, aftercare; each volunteer sees its own."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from dispatch.missions import reward
from rescue.settings import Settings, SettingsError
from tests.conftest import ADMIN
from tests.dispatch.guidance_support import Responder, Scene, accept, scene


async def status(client: TestClient, r: Responder, marker: str) -> None:
    resp = await client.post(
        f"/v1/me/offers/{r.offer_id}/status", json={"status": marker}, headers=r.headers
    )
    assert resp.status == 200, await resp.text()


async def close(client: TestClient, s: Scene) -> dict[str, Any]:
    resp = await client.post(
        f"/v1/incidents/{s.incident_id}/close",
        json={"outcome": {"rosc": True}},
        headers=s.center.headers,
    )
    assert resp.status == 200
    return dict(await resp.json())


async def missions_of(client: TestClient, r: Responder) -> list[dict[str, Any]]:
    resp = await client.get("/v1/me/missions", headers=r.headers)
    assert resp.status == 200
    return list((await resp.json())["items"])


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def test_reward_rules_count_what_a_marker_implies() -> None:
    rules = [("arrived",), ("aed_arrived", "pads_attached")]
    assert reward(rules, set()) == {
        "eligible": False,
        "rules": ["arrived", "aed_arrived+pads_attached"],
        "met": [],
    }
    assert reward(rules, {"aed_collected"})["eligible"] is False
    # Compressions happen on scene; a shock means the pads were on, so the AED was there.
    assert reward(rules, {"cpr_started"})["met"] == ["arrived"]
    assert reward(rules, {"shock_delivered"})["met"] == ["arrived", "aed_arrived+pads_attached"]
    assert reward([("cpr_started", "shock_delivered")], {"arrived", "shock_delivered"}) == {
        "eligible": False,
        "rules": ["cpr_started+shock_delivered"],
        "met": [],
    }


async def test_missions_give_cover_and_reward_by_the_rules(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    client = await make_client(
        reward_rules=(("arrived", "pads_attached"), ("shock_delivered",)),
        insurance_margin_s=1800,
    )
    s = await scene(client, pg, volunteers=3)
    a, b, c = [await accept(client, s, v) for v in s.volunteers]
    await status(client, a, "arrived")
    await status(client, a, "pads_attached")
    await status(client, b, "arrived")
    await status(client, b, "withdrawn")
    await status(client, c, "aed_collected")

    (ongoing,) = await missions_of(client, a)
    assert ongoing["id"] == a.offer_id and ongoing["incident_id"] == s.incident_id
    assert ongoing["status"] == "ongoing" and ongoing["ended_at"] is None
    assert ongoing["insurance"]["until"] is None and ongoing["insurance"]["active"] is True
    assert ongoing["reward"] == {
        "eligible": True,
        "rules": ["arrived+pads_attached", "shock_delivered"],
        "met": ["arrived+pads_attached"],
    }
    assert [m["marker"] for m in ongoing["markers"]] == ["arrived", "pads_attached"]

    (withdrawn,) = await missions_of(client, b)
    assert withdrawn["status"] == "ended" and withdrawn["ended_by"] == "withdrawn"
    assert withdrawn["reward"]["eligible"] is False
    cover = withdrawn["insurance"]
    assert cover["from"] == withdrawn["accepted_at"] and cover["margin_s"] == 1800
    assert parse(cover["until"]) - parse(withdrawn["ended_at"]) == dt.timedelta(seconds=1800)
    assert withdrawn["markers"][-1]["at"] == withdrawn["ended_at"]

    incident = await close(client, s)
    closed_at = parse(incident["closed_at"])
    (ended,) = await missions_of(client, a)
    assert ended["ended_by"] == "incident_closed" and parse(ended["ended_at"]) == closed_at
    assert parse(ended["insurance"]["until"]) == closed_at + dt.timedelta(seconds=1800)
    assert ended["incident"]["status"] == "closed"
    (fetcher,) = await missions_of(client, c)
    assert fetcher["reward"]["eligible"] is False and fetcher["role"] == "cpr"


async def test_a_volunteer_sees_only_its_own_missions_and_exercises_are_none(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    s = await scene(client, pg, volunteers=2)
    a, b = [await accept(client, s, v) for v in s.volunteers]
    assert [m["id"] for m in await missions_of(client, a)] == [a.offer_id]
    assert [m["id"] for m in await missions_of(client, b)] == [b.offer_id]
    resp = await client.get(f"/v1/me/missions/{a.offer_id}", headers=b.headers)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await client.get(f"/v1/me/missions/{a.offer_id}", headers=a.headers)
    assert resp.status == 200 and (await resp.json())["volunteer_id"] == a.volunteer.id
    for path in (f"/v1/me/missions/{a.offer_id}/debrief", "/v1/me/missions/nope/debrief"):
        assert (await client.get(path, headers=b.headers)).status == 404
    resp = await client.post(
        f"/v1/me/missions/{a.offer_id}/legal-aid",
        json={"description": "不是我的任务"},
        headers=b.headers,
    )
    assert resp.status == 404
    resp = await client.get("/v1/missions", headers=a.headers)
    assert resp.status == 403

    await close(client, s)
    drill = await scene(client, pg, the_center=s.center, exercise=True)
    d = await accept(client, drill, s.volunteers[0])
    assert [m["id"] for m in await missions_of(client, d)] == [a.offer_id]
    resp = await client.get(f"/v1/me/missions/{d.offer_id}", headers=d.headers)
    assert resp.status == 404


async def test_legal_aid_is_asked_once_by_the_volunteer_and_handled_by_admins(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    s = await scene(client, pg)
    a = await accept(client, s, s.volunteers[0])
    path = f"/v1/me/missions/{a.offer_id}/legal-aid"
    resp = await client.post(path, json={"contact_phone": "x" * 51}, headers=a.headers)
    assert resp.status == 400
    fields = {d["field"] for d in (await resp.json())["error"]["details"]}
    assert fields == {"description", "contact_phone"}
    body = {"description": "家属称要追究按压造成的肋骨骨折", "contact_phone": "13900000000"}
    resp = await client.post(path, json=body, headers=a.headers)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["status"] == "open" and created["mission_id"] == a.offer_id
    assert created["volunteer"]["id"] == a.volunteer.id
    resp = await client.post(path, json=body, headers=a.headers)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "legal_aid_exists"

    resp = await client.get("/v1/legal-aid?status=open", headers=ADMIN)
    (listed,) = (await resp.json())["items"]
    assert listed["id"] == created["id"] and listed["volunteer"]["phone"] == "13800000000"
    resp = await client.patch(
        f"/v1/legal-aid/{created['id']}",
        json={"status": "in_progress", "note": "已联系律师"},
        headers=ADMIN,
    )
    assert resp.status == 200
    updated = await resp.json()
    assert updated["status"] == "in_progress" and updated["note"] == "已联系律师"
    assert (await (await client.get("/v1/legal-aid?status=open", headers=ADMIN)).json())[
        "items"
    ] == []
    for bad in ({}, {"status": "lost"}, {"colour": "red"}):
        resp = await client.patch(f"/v1/legal-aid/{created['id']}", json=bad, headers=ADMIN)
        assert resp.status == 400, bad
    resp = await client.patch("/v1/legal-aid/lga_nope", json={"note": "x"}, headers=ADMIN)
    assert resp.status == 404
    assert (await client.get("/v1/legal-aid?status=lost", headers=ADMIN)).status == 400
    mission = await (await client.get(f"/v1/me/missions/{a.offer_id}", headers=a.headers)).json()
    assert mission["legal_aid"]["status"] == "in_progress"


async def test_the_debrief_after_a_mission_and_who_asked_to_be_called(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    s = await scene(client, pg, volunteers=2)
    a, b = [await accept(client, s, v) for v in s.volunteers]
    path = f"/v1/me/missions/{a.offer_id}/debrief"
    resp = await client.get(path, headers=a.headers)
    debrief = await resp.json()
    assert debrief["available"] is False and debrief["answers"] is None
    assert {q["id"] for q in debrief["questions"]} >= {"wellbeing", "comment"}
    assert all(q["text_zh"] and q["text_en"] for q in debrief["questions"])
    answers = {"wellbeing": 2, "intrusive_thoughts": True, "comment": "一直想着那个场面"}
    body = {"answers": answers, "call_requested": True}
    resp = await client.post(path, json=body, headers=a.headers)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "mission_ongoing"

    await status(client, a, "handed_over")
    resp = await client.post(
        path, json={"answers": {"wellbeing": 9, "mood": "ok"}, "x": 1}, headers=a.headers
    )
    assert resp.status == 400
    fields = {d["field"] for d in (await resp.json())["error"]["details"]}
    assert fields == {"answers.wellbeing", "answers.mood", "x"}
    resp = await client.post(path, json=body, headers=a.headers)
    assert resp.status == 201, await resp.text()
    saved = await resp.json()
    assert saved["available"] is True and saved["answers"] == answers
    assert saved["call_requested"] is True and saved["submitted_at"]
    await close(client, s)
    resp = await client.post(
        f"/v1/me/missions/{b.offer_id}/debrief", json={"answers": {}}, headers=b.headers
    )
    assert resp.status == 201 and (await resp.json())["call_requested"] is False

    resp = await client.get("/v1/debriefs?call_requested=true", headers=ADMIN)
    (asked,) = (await resp.json())["items"]
    assert asked["mission_id"] == a.offer_id and asked["volunteer"]["id"] == a.volunteer.id
    assert asked["volunteer"]["phone"] and asked["answers"]["wellbeing"] == 2
    resp = await client.get("/v1/debriefs", headers=ADMIN)
    assert len((await resp.json())["items"]) == 2
    # Answering again keeps the latest answers: 200.
    resp = await client.post(path, json={"call_requested": False}, headers=a.headers)
    assert resp.status == 200 and (await resp.json())["answers"] == {}
    resp = await client.get("/v1/debriefs?call_requested=true", headers=ADMIN)
    assert (await resp.json())["items"] == []
    mission = await (await client.get(f"/v1/me/missions/{a.offer_id}", headers=a.headers)).json()
    assert mission["debrief"]["call_requested"] is False


async def test_admins_list_and_export_every_mission(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    s = await scene(client, pg, volunteers=2)
    a, b = [await accept(client, s, v) for v in s.volunteers]
    await status(client, a, "arrived")
    resp = await client.get("/v1/missions?limit=1", headers=ADMIN)
    first = await resp.json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    resp = await client.get(f"/v1/missions?volunteer_id={b.volunteer.id}", headers=ADMIN)
    assert [m["id"] for m in (await resp.json())["items"]] == [b.offer_id]
    resp = await client.get("/v1/missions?from=2020-01-01&to=2020-01-02", headers=ADMIN)
    assert (await resp.json())["items"] == []

    resp = await client.get("/v1/missions?format=csv", headers=ADMIN)
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(await resp.text()))}
    assert set(rows) == {a.offer_id, b.offer_id}
    assert rows[a.offer_id]["reward_eligible"] == "true"
    assert rows[a.offer_id]["markers"] == "arrived"
    assert rows[b.offer_id]["reward_eligible"] == "false"
    assert rows[b.offer_id]["insurance_until"] == "" and rows[b.offer_id]["status"] == "ongoing"


def test_reward_rules_and_the_margin_are_read_from_the_environment() -> None:
    base = {"RESCUE_ADMIN_TOKEN": "adm_" + "x" * 20}
    settings = Settings.from_env(
        {**base, "RESCUE_REWARD_RULES": "arrived+cpr_started, shock_delivered"}
    )
    assert settings.reward_rules == (("arrived", "cpr_started"), ("shock_delivered",))
    assert Settings.from_env(base).reward_rules == (("arrived",),)
    assert Settings.from_env(base).insurance_margin_s == 3600
    for bad in ("arrived,,rosc", "withdrawn", "arrived+teleported", " "):
        with pytest.raises(SettingsError, match="RESCUE_REWARD_RULES"):
            Settings.from_env({**base, "RESCUE_REWARD_RULES": bad})
    with pytest.raises(SettingsError, match="RESCUE_INSURANCE_MARGIN_S"):
        Settings.from_env({**base, "RESCUE_INSURANCE_MARGIN_S": "-5"})
    with pytest.raises(SettingsError, match="RESCUE_METRONOME_PER_MIN"):
        Settings.from_env({**base, "RESCUE_METRONOME_PER_MIN": "130"})
