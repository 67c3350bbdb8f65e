"""Helpers of the guidance, records and missions tests: an incident with its session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient

from tests.dispatch.support import (
    PATIENT,
    Center,
    Volunteer,
    center,
    offset,
    raise_alert,
    volunteer,
)
from tests.helpers import bearer


@dataclass(frozen=True)
class Responder:
    volunteer: Volunteer
    offer_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return self.volunteer.headers


@dataclass(frozen=True)
class Scene:
    """An incident, its center, its session and the dispatcher's token."""

    center: Center
    plan: dict[str, Any]
    volunteers: list[Volunteer]

    @property
    def incident_id(self) -> str:
        return str(self.plan["incident_id"])

    @property
    def session_id(self) -> str:
        return str(self.plan["guidance"]["session_id"])

    @property
    def token(self) -> str:
        return str(self.plan["guidance"]["token"])

    def offer_of(self, vol: Volunteer) -> str:
        (offer_id,) = [
            r["offer_id"] for r in self.plan["responders"] if r["volunteer_id"] == vol.id
        ]
        return str(offer_id)


async def scene(
    client: TestClient,
    pg: asyncpg.Connection,
    *,
    volunteers: int = 1,
    the_center: Center | None = None,
    **alert: Any,
) -> Scene:
    """A center (or the given one), volunteers on duty near the patient, and an alert."""
    c = the_center or await center(client)
    vols = [
        await volunteer(client, pg, offset(PATIENT, north_m=20 + 15 * n)) for n in range(volunteers)
    ]
    plan = await raise_alert(client, c, **alert)
    assert {v.id for v in vols} <= {r["volunteer_id"] for r in plan["responders"]}
    return Scene(center=c, plan=plan, volunteers=vols)


async def accept(client: TestClient, s: Scene, vol: Volunteer) -> Responder:
    """The volunteer accepts its offer: its guidance token."""
    offer_id = s.offer_of(vol)
    resp = await client.post(f"/v1/me/offers/{offer_id}/accept", headers=vol.headers)
    assert resp.status == 200, await resp.text()
    guidance = (await resp.json())["guidance"]
    assert guidance["session_id"] == s.session_id
    return Responder(volunteer=vol, offer_id=offer_id, token=guidance["token"])


async def join(client: TestClient, session_id: str, token: str) -> ClientWebSocketResponse:
    """Open the session's socket with ?token= (as a browser does)."""
    return await client.ws_connect(f"/v1/guidance/{session_id}/ws?token={token}")


PRESENCE_EVENTS = ("online", "offline")


def is_presence(message: dict[str, Any]) -> bool:
    """Whether a message tells that someone came online or went offline."""
    return message["type"] == "participant" and message.get("event") in PRESENCE_EVENTS


async def receive(ws: ClientWebSocketResponse, timeout: float = 10) -> dict[str, Any]:
    """The next message but presence ones (tests of presence read those with next_presence)."""
    while True:
        message = dict(await ws.receive_json(timeout=timeout))
        if not is_presence(message):
            return message


async def next_of(ws: ClientWebSocketResponse, kind: str, timeout: float = 10) -> dict[str, Any]:
    """The next message of a type, skipping others and presence (at most `timeout` s each)."""
    while True:
        message = await receive(ws, timeout=timeout)
        if message["type"] == kind:
            return message


async def next_presence(ws: ClientWebSocketResponse, timeout: float = 10) -> dict[str, Any]:
    """The next presence message, skipping others."""
    while True:
        message = dict(await ws.receive_json(timeout=timeout))
        if is_presence(message):
            return message


async def get_session(client: TestClient, session_id: str, token: str) -> Any:
    """GET /v1/guidance/{id} with a token: (status, body)."""
    resp = await client.get(f"/v1/guidance/{session_id}", headers=bearer(token))
    return resp.status, await resp.json()
