"""Use cases of the volunteer registry, tokens and duty (connections passed in)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import asyncpg
from redis.asyncio import Redis

from rescue.auth import hash_token
from rescue.ids import new_id
from rescue.settings import generate_token
from volunteers import positions, queries
from volunteers.errors import (
    CertificateExpired,
    DuplicateCertificate,
    InvalidCertificateDates,
    NotOnDuty,
    Suspended,
    VolunteerNotFound,
)
from volunteers.models import VolunteerFilter, VolunteerInput, meta_of

logger = logging.getLogger(__name__)


async def create_volunteer(
    conn: asyncpg.Connection, *, data: VolunteerInput
) -> tuple[asyncpg.Record, str]:
    """Register a volunteer; returns the row and its token (shown to the admin only once)."""
    token = generate_token("vol")
    try:
        row = await conn.fetchrow(
            queries.INSERT_VOLUNTEER,
            new_id("vol"),
            data.name,
            data.phone,
            data.cert_number,
            data.cert_issuer,
            data.cert_issued_on,
            data.cert_expires_on,
            data.travel_mode or "walk",
            data.status or "active",
            data.quiet_hours,
            data.home_district,
            hash_token(token),
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateCertificate(data.cert_number) from None
    return row, token


async def get_volunteer(conn: asyncpg.Connection, *, volunteer_id: str) -> asyncpg.Record:
    """A volunteer's row, or VolunteerNotFound."""
    row = await conn.fetchrow(queries.GET_VOLUNTEER, volunteer_id)
    if row is None:
        raise VolunteerNotFound(volunteer_id)
    return row


async def list_volunteers(
    conn: asyncpg.Connection, *, filters: VolunteerFilter, after: str | None, limit: int
) -> list[asyncpg.Record]:
    """Volunteers in id order after a cursor, at most `limit` rows."""
    pattern = None
    if filters.q:
        escaped = filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
    return list(
        await conn.fetch(
            queries.LIST_VOLUNTEERS,
            after,
            filters.status,
            filters.district,
            pattern,
            filters.expires_from,
            filters.expires_until,
            limit,
        )
    )


async def update_volunteer(
    conn: asyncpg.Connection, *, volunteer_id: str, changes: Mapping[str, Any]
) -> asyncpg.Record:
    """Apply validated changes in one transaction (all or nothing)."""
    try:
        async with conn.transaction():
            current = await conn.fetchrow(queries.GET_VOLUNTEER_FOR_UPDATE, volunteer_id)
            if current is None:
                raise VolunteerNotFound(volunteer_id)
            merged = {**dict(current), **changes}
            if merged["cert_expires_on"] < merged["cert_issued_on"]:
                raise InvalidCertificateDates()
            row: asyncpg.Record = await conn.fetchrow(
                queries.UPDATE_VOLUNTEER,
                volunteer_id,
                merged["name"],
                merged["phone"],
                merged["cert_number"],
                merged["cert_issuer"],
                merged["cert_issued_on"],
                merged["cert_expires_on"],
                merged["travel_mode"],
                merged["status"],
                merged["quiet_hours"],
                merged["home_district"],
            )
    except asyncpg.UniqueViolationError:
        raise DuplicateCertificate(str(changes.get("cert_number"))) from None
    return row


async def metas_of(conn: asyncpg.Connection, *, volunteer_ids: list[str]) -> list[asyncpg.Record]:
    """The eligibility columns of these volunteers."""
    if not volunteer_ids:
        return []
    return list(await conn.fetch(queries.GET_METAS, volunteer_ids))


async def sync_duty_meta(redis: Redis, *, rows: list[asyncpg.Record]) -> None:
    """Refresh the Redis copy of on-duty volunteers' eligibility facts (best effort: logged)."""
    if not rows:
        return
    try:
        await positions.refresh_meta_many(redis, {r["id"]: meta_of(r) for r in rows})
    except Exception as exc:  # PostgreSQL is the record; a Redis outage must not undo the write
        logger.warning("could not refresh the duty facts of %d volunteers: %r", len(rows), exc)


async def rotate_token(conn: asyncpg.Connection, *, volunteer_id: str) -> tuple[str, bytes | None]:
    """A new token for a volunteer; returns it and the hash of the token it replaces."""
    token = generate_token("vol")
    row = await conn.fetchrow(queries.ROTATE_TOKEN, volunteer_id, hash_token(token))
    if row is None:
        raise VolunteerNotFound(volunteer_id)
    old: bytes | None = row["old_hash"]
    return token, old


async def go_on_duty(
    conn: asyncpg.Connection,
    redis: Redis,
    *,
    volunteer_id: str,
    lat: float,
    lng: float,
    today: dt.date,
    now: float,
) -> None:
    """Check in at a position: refused when suspended or the certificate has expired."""
    async with conn.transaction():
        row = await conn.fetchrow(queries.GET_VOLUNTEER_FOR_SHARE, volunteer_id)
        if row is None:
            raise VolunteerNotFound(volunteer_id)
        if row["status"] != "active":
            raise Suspended()
        if row["cert_expires_on"] < today:
            raise CertificateExpired(row["cert_expires_on"].isoformat())
        await positions.set_on_duty(
            redis, volunteer_id=volunteer_id, meta=meta_of(row), lat=lat, lng=lng, now=now
        )


async def go_off_duty(redis: Redis, *, volunteer_id: str) -> None:
    """Check out: the position is forgotten at once."""
    await positions.set_off_duty(redis, volunteer_id=volunteer_id)


async def report_position(
    redis: Redis, *, volunteer_id: str, lat: float, lng: float, now: float
) -> None:
    """The latest position of an on-duty volunteer (NotOnDuty otherwise)."""
    if not await positions.update_position(
        redis, volunteer_id=volunteer_id, lat=lat, lng=lng, now=now
    ):
        raise NotOnDuty()
