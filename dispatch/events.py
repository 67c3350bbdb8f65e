"""Recording what happens to an incident: an event on the bus and its timeline entry, together.

Both are written in the caller's transaction, so an incident's history and what 120 and the
phones hear can never disagree. See dispatch/models.py for the event and timeline vocabulary.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from dispatch import queries
from rescue.bus import Event
from rescue.bus.outbox import emit_many, new_event


@dataclass(frozen=True, slots=True)
class IncidentRef:
    """What every event of an incident carries."""

    id: str
    external_id: str
    center_id: str
    exercise: bool

    @classmethod
    def of(cls, row: Mapping[str, Any], *, id_key: str = "id") -> IncidentRef:
        """From a row with id (or id_key), external_id, center_id and exercise."""
        return cls(
            id=row[id_key],
            external_id=row["external_id"],
            center_id=row["center_id"],
            exercise=row["exercise"],
        )

    def common(self) -> dict[str, Any]:
        """The fields every event's data has."""
        return {
            "incident_id": self.id,
            "external_id": self.external_id,
            "center_id": self.center_id,
            "exercise": self.exercise,
        }


@dataclass(frozen=True, slots=True)
class Entry:
    """One timeline entry."""

    type: str
    actor: str
    data: dict[str, Any]


def entry_data(incident: IncidentRef, data: Mapping[str, Any]) -> dict[str, Any]:
    """A timeline entry's data: exercises are marked in every entry."""
    return {**data, "exercise": True} if incident.exercise else dict(data)


async def add_entries(
    conn: asyncpg.Connection,
    incident: IncidentRef,
    entries: Sequence[Entry],
    *,
    at: dt.datetime | None = None,
) -> None:
    """Append timeline entries (one round trip)."""
    if not entries:
        return
    at = at or dt.datetime.now(dt.UTC)
    await conn.executemany(
        queries.INSERT_TIMELINE,
        [(incident.id, at, e.type, e.actor, entry_data(incident, e.data)) for e in entries],
    )


def incident_events(
    incident: IncidentRef,
    events: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    at: dt.datetime | None = None,
) -> list[Event]:
    """The incident's events, validated, not yet emitted."""
    common = incident.common()
    return [
        new_event(type=type_, data={**common, **data}, key=incident.id, at=at)
        for type_, data in events
    ]


async def emit_all(
    conn: asyncpg.Connection,
    incident: IncidentRef,
    events: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    at: dt.datetime | None = None,
) -> list[Event]:
    """Emit the incident's events, in order, into the outbox (one round trip)."""
    return await emit_many(conn, incident_events(incident, events, at=at))


async def record(
    conn: asyncpg.Connection,
    incident: IncidentRef,
    *,
    type: str,
    timeline: str,
    actor: str,
    data: Mapping[str, Any],
    at: dt.datetime | None = None,
) -> Event:
    """One event and its timeline entry."""
    at = at or dt.datetime.now(dt.UTC)
    await add_entries(conn, incident, [Entry(timeline, actor, dict(data))], at=at)
    (event,) = await emit_all(conn, incident, [(type, data)], at=at)
    return event
