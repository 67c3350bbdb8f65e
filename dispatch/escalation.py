"""Escalation: durable timers in PostgreSQL, swept by a loop in every worker.

Each incident's timer is `incidents.next_escalation_at` (created_at + the escalation window).
Every LOOP_INTERVAL_S each worker (when background work is on) expires overdue offers and
claims due incidents with FOR UPDATE SKIP LOCKED, leasing each for LEASE_S, so several workers
share the work and a crash only delays a wave. A due incident whose roles lack accepted
responders (needed_aed / needed_cpr; a withdrawn responder no longer counts) gets a new wave:
the reach grows by the escalation step up to the maximum budget, and the roles still short are
offered to the best candidates not yet offered in this incident. The timer stops when the
roles are filled, the maximum is reached, or the incident ends. Declines, expiries and
withdrawals that leave a role with nobody coming bring the timer forward (dispatch/offers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from dispatch import queries
from dispatch.events import Entry, IncidentRef, add_entries, emit_all
from dispatch.models import (
    INCIDENT_ESCALATED,
    OFFER_CREATED,
    OFFER_EXPIRED,
    SYSTEM_ACTOR,
    TIMELINE_TYPES,
    DispatchConfig,
    OfferState,
    PlanInput,
    Role,
)
from dispatch.service import (
    find_candidates,
    local_time,
    offer_created_data,
    offer_rows,
    offer_summaries,
)
from geo import AedIndex
from rescue.ids import new_id
from rescue.typedefs import aed_index_key, background_key, db_key, redis_key

logger = logging.getLogger(__name__)

LOOP_INTERVAL_S = 0.5
LEASE_S = 15
CLAIM_BATCH = 10
EXPIRE_BATCH = 500


async def expire_offers(pool: asyncpg.Pool) -> int:
    """Expire overdue open offers (events and timeline per offer); how many."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(queries.EXPIRE_OFFERS, EXPIRE_BATCH)
        by_incident: dict[IncidentRef, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_incident[IncidentRef.of(row, id_key="incident_id")].append(
                {"offer_id": row["id"], "volunteer_id": row["volunteer_id"], "role": row["role"]}
            )
        kind = TIMELINE_TYPES[OFFER_EXPIRED]
        for ref, expired in by_incident.items():
            await add_entries(conn, ref, [Entry(kind, SYSTEM_ACTOR, e) for e in expired])
            await emit_all(conn, ref, [(OFFER_EXPIRED, e) for e in expired])
    return len(rows)


def short_roles(offers: list[asyncpg.Record], config: DispatchConfig) -> dict[Role, int]:
    """How many accepted responders each role still lacks."""
    accepted = Counter(
        o["role"]
        for o in offers
        if o["state"] == OfferState.ACCEPTED and o["last_status"] != "withdrawn"
    )
    needed = {Role.AED: config.needed_aed, Role.CPR: config.needed_cpr}
    return {role: n - accepted[role] for role, n in needed.items() if n > accepted[role]}


async def escalate(
    *,
    pool: asyncpg.Pool,
    redis: Redis,
    aeds: AedIndex,
    config: DispatchConfig,
    incident: asyncpg.Record,
) -> int | None:
    """Run the next wave of a claimed incident if a role is short; the new wave, or None."""
    async with pool.acquire() as conn:
        offers = list(await conn.fetch(queries.INCIDENT_OFFER_STATE, incident["id"]))
    short = short_roles(offers, config)
    if not short or incident["budget_now_s"] >= config.max_time_budget_s:
        async with pool.acquire() as conn:
            await conn.execute(queries.STOP_ESCALATION, incident["id"], incident["lease_until"])
        return None
    budget = min(incident["budget_now_s"] + config.escalation_step_s, config.max_time_budget_s)
    now = dt.datetime.now(dt.UTC)
    at_local = local_time(now, config)
    lat, lng = incident["lat"], incident["lng"]
    offered = frozenset(o["volunteer_id"] for o in offers)
    search = await find_candidates(
        redis,
        config,
        lat=lat,
        lng=lng,
        budget_s=budget,
        now=now,
        at_local=at_local,
        skip=len(offered),
    )
    if search.degraded:
        return None  # the lease brings it back; the reach widens only when someone is asked
    busy = frozenset(
        o["aed_id"]
        for o in offers
        if o["aed_id"]
        and (o["state"] == OfferState.ACCEPTED or (o["state"] == "open" and o["live"]))
    )
    plan = config.strategy(
        PlanInput(
            lat=lat,
            lng=lng,
            budget_s=budget,
            candidates=search.candidates,
            aeds=aeds.within(lat, lng, config.aed_radius_m(budget), at_local=at_local),
            model=config.model,
            offers_aed=config.offers_aed if Role.AED in short else 0,
            offers_cpr=config.offers_cpr if Role.CPR in short else 0,
            exclude=offered,
            busy_aeds=busy,
        )
    )
    rows = offer_rows(plan.responders, [new_id("off") for _ in plan.responders])
    ref = IncidentRef.of(incident)
    async with pool.acquire() as conn, conn.transaction():
        wave = await conn.fetchval(
            queries.ADVANCE_WAVE,
            incident["id"],
            incident["wave"],
            budget,
            config.max_time_budget_s,
            config.escalation_window_s,
        )
        if wave is None:
            return None  # ended meanwhile, or another worker ran this wave
        inserted = {
            r["id"]
            for r in await conn.fetch(
                queries.INSERT_WAVE_OFFERS, incident["id"], wave, config.offer_ttl_s, rows, now
            )
        }
        sent = [r for r in rows if r["id"] in inserted]
        summaries = offer_summaries(sent, wave)
        offered = offer_created_data(
            summaries, sent, expires_at=now + dt.timedelta(seconds=config.offer_ttl_s)
        )
        escalated = {"wave": wave, "budget_s": budget, "offers": len(summaries)}
        entries = [
            Entry(
                TIMELINE_TYPES[INCIDENT_ESCALATED],
                SYSTEM_ACTOR,
                {**escalated, "short": {str(role): n for role, n in short.items()}},
            )
        ]
        if summaries:
            entries.append(Entry("offers_sent", SYSTEM_ACTOR, {"wave": wave, "offers": summaries}))
        await add_entries(conn, ref, entries, at=now)
        await emit_all(
            conn,
            ref,
            [(INCIDENT_ESCALATED, escalated), *((OFFER_CREATED, d) for d in offered)],
            at=now,
        )
    logger.info("incident %s: wave %d at %d s, %d offers", ref.id, wave, budget, len(summaries))
    return int(wave)


async def tick(*, pool: asyncpg.Pool, redis: Redis, aeds: AedIndex, config: DispatchConfig) -> int:
    """One round: expire offers, then escalate the due incidents; how many were claimed."""
    await expire_offers(pool)
    async with pool.acquire() as conn:
        claimed = await conn.fetch(queries.CLAIM_DUE_INCIDENTS, CLAIM_BATCH, LEASE_S)
    for incident in claimed:
        try:
            await escalate(pool=pool, redis=redis, aeds=aeds, config=config, incident=incident)
        except Exception:  # one incident's failure must not stop the others' waves
            logger.exception("escalation of incident %s failed", incident["id"])
    return len(claimed)


async def run(app: web.Application, config: DispatchConfig) -> None:
    """The escalation loop of one worker."""
    while True:
        try:
            while (
                await tick(
                    pool=app[db_key], redis=app[redis_key], aeds=app[aed_index_key], config=config
                )
                == CLAIM_BATCH
            ):
                pass  # a backlog: keep going without waiting
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("escalation round failed, retrying: %r", exc)
        except Exception:
            logger.exception("escalation round failed, retrying")
        await asyncio.sleep(LOOP_INTERVAL_S)


def escalation_ctx(config: DispatchConfig) -> Any:
    """A cleanup context running the loop while the app runs (when background work is on)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if not app[background_key]:
            yield
            return
        task = asyncio.create_task(run(app, config), name="dispatch-escalation")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx
