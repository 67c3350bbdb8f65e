"""Offers from the volunteer's side: list, accept (first wins), decline, status markers.

A volunteer only ever sees and acts on its own offers: another volunteer's offer id is a 404.
Accepting one withdraws the volunteer's other open offers (offer.cancelled, reason
engaged_elsewhere), so their incidents do not wait for an answer that cannot come.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dispatch import queries
from dispatch.errors import AlreadyEngaged, OfferNotEngaged, OfferNotFound, OfferNotOpen
from dispatch.events import IncidentRef, record
from dispatch.incidents import BEST_EFFORT_TIMEOUT_S, release_all
from dispatch.models import (
    ENDING_MARKERS,
    OFFER_ACCEPTED,
    OFFER_CANCELLED,
    OFFER_DECLINED,
    RESPONDER_STATUS,
    SYSTEM_ACTOR,
    TIMELINE_TYPES,
    DispatchConfig,
    OfferState,
)
from dispatch.tokens import participant_token
from rescue.auth import hash_token
from rescue.ids import new_id
from volunteers.positions import engage

logger = logging.getLogger(__name__)

ENGAGEMENT_INDEX = "offers_one_engagement_idx"
# The reason of an offer withdrawn because its volunteer accepted another.
ENGAGED_ELSEWHERE = "engaged_elsewhere"


async def list_offers(
    conn: asyncpg.Connection, *, volunteer_id: str, after: str | None, limit: int
) -> list[asyncpg.Record]:
    """The volunteer's open offers and its ongoing accepted one, by id (limit rows)."""
    return list(await conn.fetch(queries.MY_OFFERS, volunteer_id, after, limit))


async def get_offer(
    conn: asyncpg.Connection, *, volunteer_id: str, offer_id: str
) -> asyncpg.Record:
    """One of the volunteer's own offers."""
    offer = await conn.fetchrow(queries.GET_OFFER, offer_id, volunteer_id)
    if offer is None:
        raise OfferNotFound(offer_id)
    return offer


def _effective_state(offer: asyncpg.Record) -> str:
    """The state to report when an offer cannot be answered any more."""
    if offer["state"] == OfferState.OPEN:
        if offer["incident_status"] != "open":
            return OfferState.CANCELLED
        if offer["expires_at"] <= dt.datetime.now(dt.UTC):
            return OfferState.EXPIRED
    return str(offer["state"])


async def accept_offer(
    *, pool: asyncpg.Pool, redis: Redis, config: DispatchConfig, volunteer_id: str, offer_id: str
) -> asyncpg.Record:
    """Accept an open offer: the volunteer is engaged and joins the guidance session."""
    participant_id = new_id("gp")
    async with pool.acquire() as conn:
        offer = await get_offer(conn, volunteer_id=volunteer_id, offer_id=offer_id)
        if offer["state"] != OfferState.OPEN:
            raise OfferNotOpen(offer_id, offer["state"])
        token = participant_token(
            config.token_key, session_id=offer["session_id"], participant_id=participant_id
        )
        try:
            async with conn.transaction():
                row = await conn.fetchrow(
                    queries.ACCEPT_OFFER,
                    offer_id,
                    volunteer_id,
                    offer["incident_id"],
                    participant_id,
                    offer["session_id"],
                    hash_token(token),
                )
                if row["offer_id"] is None:
                    now = await get_offer(conn, volunteer_id=volunteer_id, offer_id=offer_id)
                    raise OfferNotOpen(offer_id, _effective_state(now))
                data = {
                    "offer_id": offer_id,
                    "volunteer_id": volunteer_id,
                    "role": offer["role"],
                    "aed_id": offer["aed_id"],
                }
                await record(
                    conn,
                    IncidentRef.of(offer, id_key="incident_id"),
                    type=OFFER_ACCEPTED,
                    timeline=TIMELINE_TYPES[OFFER_ACCEPTED],
                    actor=volunteer_id,
                    data=data,
                )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == ENGAGEMENT_INDEX:
                raise AlreadyEngaged() from None
            raise
        try:
            async with asyncio.timeout(BEST_EFFORT_TIMEOUT_S):
                await engage(redis, volunteer_id=volunteer_id, incident_id=offer["incident_id"])
        except (RedisError, OSError, TimeoutError) as exc:
            # PostgreSQL holds the engagement; Redis only spares other alerts an offer to them.
            logger.warning("could not mark %s engaged in Redis: %r", volunteer_id, exc)
        await _withdraw_other_offers(conn, config, volunteer_id=volunteer_id, accepted=offer_id)
        return await get_offer(conn, volunteer_id=volunteer_id, offer_id=offer_id)


async def _withdraw_other_offers(
    conn: asyncpg.Connection, config: DispatchConfig, *, volunteer_id: str, accepted: str
) -> None:
    """Cancel the volunteer's other open offers (offer.cancelled, reason engaged_elsewhere),
    then let each of their incidents escalate early if that role now has nobody coming."""
    async with conn.transaction():
        rows = await conn.fetch(queries.WITHDRAW_OTHER_OFFERS, volunteer_id, accepted)
        for row in rows:
            await record(
                conn,
                IncidentRef.of(row, id_key="incident_id"),
                type=OFFER_CANCELLED,
                timeline=TIMELINE_TYPES[OFFER_CANCELLED],
                actor=SYSTEM_ACTOR,
                data={
                    "offer_id": row["id"],
                    "volunteer_id": volunteer_id,
                    "role": row["role"],
                    "reason": ENGAGED_ELSEWHERE,
                },
            )
    for row in rows:  # after the commit, one by one
        await _escalate_early(conn, config, row)


async def decline_offer(
    *, pool: asyncpg.Pool, config: DispatchConfig, volunteer_id: str, offer_id: str
) -> asyncpg.Record:
    """Decline an open offer; escalate early if that leaves its role with nobody coming."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await conn.fetchrow(queries.DECLINE_OFFER, offer_id, volunteer_id)
            if row is None:
                offer = await get_offer(conn, volunteer_id=volunteer_id, offer_id=offer_id)
                raise OfferNotOpen(offer_id, _effective_state(offer))
            await record(
                conn,
                IncidentRef.of(row, id_key="incident_id"),
                type=OFFER_DECLINED,
                timeline=TIMELINE_TYPES[OFFER_DECLINED],
                actor=volunteer_id,
                data={"offer_id": offer_id, "volunteer_id": volunteer_id, "role": row["role"]},
            )
        await _escalate_early(conn, config, row)  # after the commit, alone
        return await get_offer(conn, volunteer_id=volunteer_id, offer_id=offer_id)


async def report_status(
    *,
    pool: asyncpg.Pool,
    redis: Redis,
    config: DispatchConfig,
    volunteer_id: str,
    offer_id: str,
    status: str,
) -> asyncpg.Record:
    """A responder's marker on its accepted offer; handed_over and withdrawn end it."""
    ending = status in ENDING_MARKERS
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await conn.fetchrow(queries.OFFER_STATUS, offer_id, volunteer_id, status, ending)
            if row is None:
                offer = await get_offer(conn, volunteer_id=volunteer_id, offer_id=offer_id)
                state = offer["state"] if offer["state"] != OfferState.ACCEPTED else "ended"
                raise OfferNotEngaged(offer_id, state)
            await record(
                conn,
                IncidentRef.of(row, id_key="incident_id"),
                type=RESPONDER_STATUS,
                timeline=status,
                actor=volunteer_id,
                data={"offer_id": offer_id, "volunteer_id": volunteer_id, "status": status},
            )
        if ending:
            await release_all(redis, row["incident_id"], [volunteer_id])
        if status == "withdrawn":
            await _escalate_early(conn, config, row)
        return await get_offer(conn, volunteer_id=volunteer_id, offer_id=offer_id)


async def _escalate_early(
    conn: asyncpg.Connection, config: DispatchConfig, offer: asyncpg.Record
) -> None:
    """Escalate the offer's incident now if its role has nobody left who might come. Alone,
    after the offer's transaction: it locks the incident, which must not be taken after an
    offer (cancel and close lock the incident first)."""
    await conn.fetchval(
        queries.ESCALATE_EARLY, offer["incident_id"], offer["role"], config.max_time_budget_s
    )
