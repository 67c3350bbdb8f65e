"""Escalation: durable timers in PostgreSQL, swept by a loop in every worker.

Each incident's timer is `incidents.next_escalation_at` (created_at + the escalation window).
Every LOOP_INTERVAL_S each worker (when background work is on) reads whether anything is due,
and if so expires overdue offers and claims due incidents with FOR UPDATE SKIP LOCKED, leasing
each for LEASE_S, so several workers share the work and a crash only delays a wave. A due
incident whose roles lack accepted responders (needed_aed / needed_cpr; a withdrawn responder
no longer counts) gets a new wave: the reach grows by the escalation step up to the maximum
budget, and the roles still short are offered to the best candidates not yet offered in this
incident. The timer stops when the roles are filled, the maximum is reached, or the incident
ends. Declines, expiries and withdrawals that leave a role with nobody coming bring the timer
forward (dispatch/offers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from dispatch import queries
from dispatch.callback_sender import CallbackSender
from dispatch.callbacks import NewDeliveries, callback_sender_key
from dispatch.events import Entry, IncidentRef, add_entries, emit_all, entry_data, incident_events
from dispatch.models import (
    INCIDENT_ESCALATED,
    OFFER_CREATED,
    OFFER_EXPIRED,
    SYSTEM_ACTOR,
    TIMELINE_TYPES,
    DispatchConfig,
    OfferState,
    Plan,
    PlanInput,
    Role,
)
from dispatch.service import (
    ATTEMPTS,
    bounds_for,
    checked_plan,
    find_candidates,
    local_time,
    nearest_route_aeds,
    offer_created_data,
    offer_rows,
    offer_summaries,
    unknown_candidates,
)
from geo import AedIndex
from rescue.bus import Bus
from rescue.bus.outbox import OutboxRows, outbox_rows
from rescue.foreground import Foreground
from rescue.ids import new_id
from rescue.typedefs import (
    aed_index_key,
    background_key,
    bus_key,
    db_key,
    foreground_key,
    redis_key,
)

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
    bus: Bus | None = None,
    foreground: Foreground | None = None,
    callbacks: CallbackSender | None = None,
) -> int | None:
    """Run the next wave of a claimed incident if a role is short; the new wave, or None.

    With a running `bus`, the wave's events are published by this worker as soon as they are
    committed, as an alert's are (no relay has to be woken and claim them first). With the
    worker's `foreground`, each piece of the wave's CPU (the search, the AEDs and the plan,
    the draft) waits for the alerts in flight there to finish (a bounded wait). With the
    worker's `callbacks` sender, the statement queues the wave's callbacks to 120 (the
    callbacks group leaves them) and the sender's loop is woken for them.
    """
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
    offers_aed = config.offers_aed if Role.AED in short else 0
    offers_cpr = config.offers_cpr if Role.CPR in short else 0
    # Not every AED within the wider reach: it holds hundreds at province density, each
    # judged open or not.
    route_aeds = nearest_route_aeds(
        aeds, config, lat=lat, lng=lng, budget_s=budget, at_local=at_local
    )
    bounds = bounds_for(
        config,
        budget_s=budget,
        aeds=route_aeds,
        offers_aed=offers_aed,
        offers_cpr=offers_cpr,
        skip=len(offered),
    )
    await _yield(foreground)
    search_here = functools.partial(
        find_candidates,
        redis,
        config,
        lat=lat,
        lng=lng,
        budget_s=budget,
        now=now,
        at_local=at_local,
        skip=len(offered),
    )
    search = await search_here(bounds=bounds)
    if search.degraded:
        return None  # the lease brings it back; the reach widens only when someone is asked
    busy = frozenset(
        o["aed_id"]
        for o in offers
        if o["aed_id"]
        and (o["state"] == OfferState.ACCEPTED or (o["state"] == "open" and o["live"]))
    )
    # A wave is background work: between its pieces of CPU (the search, the AEDs and the plan,
    # the draft) the worker serves what is waiting, and lets its alerts in flight finish.
    await _yield(foreground)
    inp = PlanInput(
        lat=lat,
        lng=lng,
        budget_s=budget,
        candidates=search.candidates,
        aeds=route_aeds,
        model=config.model,
        offers_aed=offers_aed,
        offers_cpr=offers_cpr,
        exclude=offered,
        busy_aeds=busy,
    )
    search, inp, plan = await checked_plan(
        config, search, inp, functools.partial(search_here, bounds=None)
    )
    ref = IncidentRef.of(incident)
    lease = bus.claim_lease if bus is not None and bus.publishing else None
    for _ in range(ATTEMPTS):
        await _yield(foreground)
        wave = _draft_wave(
            incident=incident,
            ref=ref,
            plan=plan,
            short=short,
            budget=budget,
            now=now,
            config=config,
            sender=callbacks,
        )
        async with pool.acquire() as conn:
            row = await conn.fetchrow(queries.ESCALATE_WAVE, *wave.args(lease))
            if row["wave"] is None and len(row["known_ids"]) < len(wave.volunteer_ids):
                inp = replace(inp, exclude=inp.exclude | await unknown_candidates(conn, search))
                plan = config.strategy(inp)
                continue
        if row["wave"] is None:
            return None  # ended meanwhile, or another worker ran this wave
        if bus is not None and lease is not None:
            done = wave.deliveries.done
            bus.publish_committed(wave.outbox, row["outbox_ids"] or [], done=done)
        wave.deliveries.committed(row)
        logger.info(
            "incident %s: wave %d at %d s, %d offers",
            ref.id,
            row["wave"],
            budget,
            len(wave.volunteer_ids),
        )
        return int(row["wave"])
    raise RuntimeError(f"incident {ref.id}: offered volunteers keep disappearing")


async def _yield(foreground: Foreground | None) -> None:
    """Between two pieces of a wave: what is ready runs, and the alerts in flight finish."""
    if foreground is None:
        await asyncio.sleep(0)
    else:
        await foreground.idle()


@dataclass(frozen=True, slots=True)
class _Wave:
    """A planned wave, rendered: the ESCALATE_WAVE parameters."""

    volunteer_ids: list[str]
    params: tuple[Any, ...]  # $1-$15 (the lease, $16, and the callbacks' follow)
    outbox: OutboxRows  # the events as params $11-$15 hold them (published after the commit)
    deliveries: NewDeliveries  # their callbacks, $17-$24

    def args(self, lease: dt.timedelta | None) -> tuple[Any, ...]:
        """ESCALATE_WAVE's parameters, with the outbox rows' lease (None: the relays publish)."""
        return (*self.params, lease, *self.deliveries.params())


def _draft_wave(
    *,
    incident: asyncpg.Record,
    ref: IncidentRef,
    plan: Plan,
    short: dict[Role, int],
    budget: int,
    now: dt.datetime,
    config: DispatchConfig,
    sender: CallbackSender | None = None,
) -> _Wave:
    """Everything the one ESCALATE_WAVE statement stores, computed before the round trip: the
    wave's number is the claimed one's next (the statement stores nothing otherwise)."""
    number = incident["wave"] + 1
    rows = offer_rows(plan.responders, [new_id("off") for _ in plan.responders])
    summaries = offer_summaries(rows, number)
    offered = offer_created_data(
        summaries, rows, expires_at=now + dt.timedelta(seconds=config.offer_ttl_s)
    )
    escalated = {"wave": number, "budget_s": budget, "offers": len(summaries)}
    entries = [
        Entry(
            TIMELINE_TYPES[INCIDENT_ESCALATED],
            SYSTEM_ACTOR,
            {**escalated, "short": {str(role): n for role, n in short.items()}},
        )
    ]
    if summaries:
        entries.append(Entry("offers_sent", SYSTEM_ACTOR, {"wave": number, "offers": summaries}))
    events = incident_events(
        ref, [(INCIDENT_ESCALATED, escalated), *((OFFER_CREATED, d) for d in offered)], at=now
    )
    outbox = outbox_rows(events)
    volunteer_ids = [r["volunteer_id"] for r in rows]
    params = (
        incident["id"],
        incident["wave"],
        budget,
        config.max_time_budget_s,
        config.escalation_window_s,
        config.offer_ttl_s,
        rows,
        now,
        [{"type": e.type, "actor": e.actor, "data": entry_data(ref, e.data)} for e in entries],
        volunteer_ids,
        *outbox,
    )
    # Never claimed: the incident's earlier events may still be on their way.
    deliveries = NewDeliveries.of(events, sender, claim=False)
    return _Wave(volunteer_ids=volunteer_ids, params=params, outbox=outbox, deliveries=deliveries)


async def tick(
    *,
    pool: asyncpg.Pool,
    redis: Redis,
    aeds: AedIndex,
    config: DispatchConfig,
    bus: Bus | None = None,
    foreground: Foreground | None = None,
    callbacks: CallbackSender | None = None,
) -> int:
    """One round: expire offers, then escalate the due incidents; how many were claimed.

    A read first says whether either is due, so that an idle round (nearly every one: a
    worker runs two a second) is one round trip. It settles nothing: the expiry and the claim
    still lock what they take (SKIP LOCKED), so another worker's round taking the same work in
    between leaves them nothing to do, and what falls due after the read waits for the next
    round, as it would have."""
    async with pool.acquire() as conn:
        due = await conn.fetchrow(queries.DUE_WORK)
    if due["offers"]:
        await expire_offers(pool)
    if not due["incidents"]:
        return 0
    async with pool.acquire() as conn:
        claimed = await conn.fetch(queries.CLAIM_DUE_INCIDENTS, CLAIM_BATCH, LEASE_S)
    for incident in claimed:
        try:
            await escalate(
                pool=pool,
                redis=redis,
                aeds=aeds,
                config=config,
                incident=incident,
                bus=bus,
                foreground=foreground,
                callbacks=callbacks,
            )
        except Exception:  # one incident's failure must not stop the others' waves
            logger.exception("escalation of incident %s failed", incident["id"])
    return len(claimed)


async def run(app: web.Application, config: DispatchConfig) -> None:
    """The escalation loop of one worker."""
    while True:
        try:
            while (
                await tick(
                    pool=app[db_key],
                    redis=app[redis_key],
                    aeds=app[aed_index_key],
                    config=config,
                    bus=app.get(bus_key),
                    foreground=app.get(foreground_key),
                    callbacks=app.get(callback_sender_key),
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
