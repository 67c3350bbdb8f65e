"""Incidents after the alert: reading one, cancelling or closing it (atomically, once)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dispatch import queries
from dispatch.errors import IncidentNotFound, IncidentNotOpen
from dispatch.events import Entry, IncidentRef, add_entries, emit_all
from dispatch.models import (
    INCIDENT_CANCELLED,
    INCIDENT_CLOSED,
    OFFER_CANCELLED,
    TIMELINE_TYPES,
    IncidentStatus,
)
from volunteers.positions import release

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IncidentView:
    """An incident with every offer and its timeline."""

    incident: asyncpg.Record
    offers: list[asyncpg.Record]
    timeline: list[asyncpg.Record]


async def get_incident(
    conn: asyncpg.Connection, *, incident_id: str, center_id: str | None
) -> IncidentView:
    """An incident seen by its own dispatch center (center_id) or an administrator (None).

    Another center's incident is reported as not found, so ids do not reveal other centers'
    incidents.
    """
    incident = await conn.fetchrow(queries.GET_INCIDENT, incident_id, center_id)
    if incident is None:
        raise IncidentNotFound(incident_id)
    offers = await conn.fetch(queries.INCIDENT_OFFERS, incident_id)
    timeline = await conn.fetch(queries.INCIDENT_TIMELINE, incident_id)
    return IncidentView(incident=incident, offers=list(offers), timeline=list(timeline))


# Redis calls after a commit are best effort; a hanging Redis must not hold the answer long.
BEST_EFFORT_TIMEOUT_S = 0.5


async def release_all(redis: Redis, incident_id: str, volunteer_ids: Iterable[str]) -> None:
    """Free volunteers in Redis (best effort: PostgreSQL already ended the engagement)."""
    for volunteer_id in volunteer_ids:
        try:
            async with asyncio.timeout(BEST_EFFORT_TIMEOUT_S):
                await release(redis, volunteer_id=volunteer_id, incident_id=incident_id)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning(
                "could not release %s from %s in Redis: %r", volunteer_id, incident_id, exc
            )


async def end_incident(
    *,
    pool: asyncpg.Pool,
    redis: Redis,
    incident_id: str,
    center_id: str | None,
    actor: str,
    status: IncidentStatus,
    reason: str | None = None,
    outcome: dict[str, Any] | None = None,
) -> IncidentView:
    """Cancel (with a reason) or close (with an outcome) an open incident, exactly once.

    Open offers are cancelled, engagements end, the guidance session closes; the timeline and
    the events (offer.cancelled..., then incident.cancelled or incident.closed) are written in
    the same transaction. A cancelled incident's outcome is `{"reason": ...}`.
    """
    stored_outcome = outcome if status is IncidentStatus.CLOSED else {"reason": reason}
    at = dt.datetime.now(dt.UTC)
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await conn.fetchrow(
                queries.END_INCIDENT, incident_id, center_id, status.value, stored_outcome
            )
            if row is None:
                current = await conn.fetchval(queries.INCIDENT_EXISTS, incident_id, center_id)
                if current is None:
                    raise IncidentNotFound(incident_id)
                raise IncidentNotOpen(incident_id, current)
            ref = IncidentRef.of(row)
            cancelled = [
                {"offer_id": o["id"], "volunteer_id": o["volunteer_id"], "role": o["role"]}
                for o in row["cancelled_offers"]
            ]
            data: dict[str, Any]
            if status is IncidentStatus.CLOSED:
                event, data = INCIDENT_CLOSED, {"outcome": outcome}
            else:
                event, data = INCIDENT_CANCELLED, {"reason": reason}
            entries = [Entry(TIMELINE_TYPES[OFFER_CANCELLED], actor, c) for c in cancelled]
            entries.append(Entry(TIMELINE_TYPES[event], actor, data))
            await add_entries(conn, ref, entries, at=at)
            await emit_all(
                conn, ref, [*((OFFER_CANCELLED, c) for c in cancelled), (event, data)], at=at
            )
        await release_all(redis, incident_id, row["released"])
        return await get_incident(conn, incident_id=incident_id, center_id=center_id)
