"""JSON renderings: the plan, offers and incidents, in the response's coordinate system.

The plan is stored (incidents.plan) in WGS-84 without its guidance token; rendering converts
locations to the asked system and derives the token again (see dispatch/tokens.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from dispatch.models import DispatchConfig, OfferState, Plan
from dispatch.tokens import participant_token
from geo import Crs, IndexedAed
from rescue.http import render_location

RESPONDER_KEYS = ("volunteer_id", "offer_id", "role", "eta_s", "distance_m", "aed_id")


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def seconds(value: float) -> int:
    """A whole number of seconds (ETAs are rounded up: never promise too early)."""
    whole = int(value)
    return whole if whole == value else whole + 1


def metres(value: float) -> int:
    """A whole number of metres."""
    return round(value)


def _payload(aed: IndexedAed, key: str) -> Any:
    payload = aed.payload
    if isinstance(payload, Mapping):
        return payload.get(key)
    return getattr(payload, key, None)


def aed_snapshot(aed: IndexedAed) -> dict[str, Any]:
    """What an offer keeps of the AED to fetch (WGS-84), as told to the volunteer."""
    return {
        "id": aed.id,
        "name": _payload(aed, "name"),
        "address": _payload(aed, "address"),
        "lat": aed.lat,
        "lng": aed.lng,
        "indoor": aed.indoor,
        "level": aed.level,
        "access_note": _payload(aed, "access_note"),
        "opening_hours": aed.opening_hours,
    }


def stored_plan(
    *,
    incident_id: str,
    external_id: str,
    created_at: dt.datetime,
    lat: float,
    lng: float,
    district: str | None,
    time_budget_s: int,
    exercise: bool,
    plan: Plan,
    offer_ids: Sequence[str],
    session_id: str,
    participant_id: str,
    degraded: Sequence[str],
) -> dict[str, Any]:
    """The plan as stored with the incident: WGS-84, no token."""
    return {
        "incident_id": incident_id,
        "external_id": external_id,
        "created_at": created_at.isoformat(),
        "location": {"lat": lat, "lng": lng},
        "district": district,
        "time_budget_s": time_budget_s,
        "exercise": exercise,
        "responders": [
            {
                "volunteer_id": a.volunteer_id,
                "offer_id": offer_id,
                "role": a.role.value,
                "eta_s": seconds(a.eta_s),
                "distance_m": metres(a.distance_m),
                "aed_id": a.aed.id if a.aed is not None else None,
            }
            for a, offer_id in zip(plan.responders, offer_ids, strict=True)
        ],
        "aeds": [
            {
                **aed_snapshot(p.aed),
                "distance_m": metres(p.distance_m),
                "eta_s": seconds(p.eta_s),
            }
            for p in plan.aeds
        ],
        "guidance": {"session_id": session_id, "participant_id": participant_id},
        "degraded": list(degraded),
    }


def guidance(config: DispatchConfig, *, session_id: str, participant_id: str) -> dict[str, Any]:
    """A guidance session's link and this participant's own token."""
    return {
        "session_id": session_id,
        "url": f"{config.guidance_url}{session_id}/ws",
        "token": participant_token(
            config.token_key, session_id=session_id, participant_id=participant_id
        ),
    }


def _located_aed(aed: Mapping[str, Any], crs: Crs) -> dict[str, Any]:
    return {
        "id": aed["id"],
        "name": aed["name"],
        "address": aed["address"],
        "location": render_location(aed["lat"], aed["lng"], crs),
        "level": aed["level"],
        "access_note": aed["access_note"],
        "opening_hours": aed["opening_hours"],
    }


def render_plan(
    stored: Mapping[str, Any], *, status: str, crs: Crs, config: DispatchConfig
) -> dict[str, Any]:
    """The plan of the contract, from the stored one."""
    where = stored["location"]
    gd = stored["guidance"]
    return {
        "incident_id": stored["incident_id"],
        "external_id": stored["external_id"],
        "status": status,
        "created_at": stored["created_at"],
        "location": render_location(where["lat"], where["lng"], crs),
        "district": stored["district"],
        "time_budget_s": stored["time_budget_s"],
        "exercise": stored["exercise"],
        "responders": [{key: r[key] for key in RESPONDER_KEYS} for r in stored["responders"]],
        "aeds": [
            {
                **_located_aed(a, crs),
                "distance_m": a["distance_m"],
                "eta_s": a["eta_s"],
            }
            for a in stored["aeds"]
        ],
        "guidance": guidance(
            config, session_id=gd["session_id"], participant_id=gd["participant_id"]
        ),
        "degraded": list(stored["degraded"]),
    }


def render_offer(row: Mapping[str, Any], *, crs: Crs, config: DispatchConfig) -> dict[str, Any]:
    """An offer as its volunteer sees it: the patient's location only once accepted."""
    accepted = row["state"] == OfferState.ACCEPTED
    aed = row["aed"]
    return {
        "id": row["id"],
        "incident_id": row["incident_id"],
        "role": row["role"],
        "state": row["state"],
        "eta_s": row["eta_s"],
        "distance_m": row["distance_m"],
        "offered_at": _iso(row["offered_at"]),
        "expires_at": _iso(row["expires_at"]),
        "exercise": row["exercise"],
        "aed": {**_located_aed(aed, crs), "indoor": aed.get("indoor")} if aed else None,
        "incident": {
            "location": render_location(row["lat"], row["lng"], crs),
            "address": row["address"],
        }
        if accepted
        else None,
        "guidance": guidance(
            config, session_id=row["session_id"], participant_id=row["participant_id"]
        )
        if accepted and row["participant_id"] is not None
        else None,
    }


def render_incident_offer(row: Mapping[str, Any]) -> dict[str, Any]:
    """An offer as the incident's view lists it (for 120 and administrators)."""
    return {
        "id": row["id"],
        "volunteer_id": row["volunteer_id"],
        "role": row["role"],
        "state": row["state"],
        "wave": row["wave"],
        "eta_s": row["eta_s"],
        "distance_m": row["distance_m"],
        "aed_id": row["aed_id"],
        "offered_at": _iso(row["offered_at"]),
        "expires_at": _iso(row["expires_at"]),
        "answered_at": _iso(row["answered_at"]),
        "last_status": row["last_status"],
        "engaged": row["engaged"],
    }


def render_incident(
    incident: Mapping[str, Any],
    offers: Sequence[Mapping[str, Any]],
    timeline: Sequence[Mapping[str, Any]],
    *,
    crs: Crs,
    config: DispatchConfig,
) -> dict[str, Any]:
    """The incident: its plan, status, every offer, the timeline and the outcome."""
    return {
        **render_plan(incident["plan"], status=incident["status"], crs=crs, config=config),
        "address": incident["address"],
        "category": incident["category"],
        "reported_at": _iso(incident["reported_at"]),
        "wave": incident["wave"],
        "budget_s": incident["budget_now_s"],
        "closed_at": _iso(incident["closed_at"]),
        "outcome": incident["outcome"],
        "offers": [render_incident_offer(o) for o in offers],
        "timeline": [
            {"at": _iso(t["at"]), "type": t["type"], "actor": t["actor"], "data": t["data"]}
            for t in timeline
        ],
    }
