"""The alert's use case: from a validated 120 alert to a stored incident and its plan."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dispatch import queries, render
from dispatch.callback_sender import CallbackSender
from dispatch.callbacks import NewDeliveries
from dispatch.errors import ExternalIdConflict
from dispatch.events import Entry, IncidentRef, entry_data, incident_events
from dispatch.models import (
    INCIDENT_CREATED,
    OFFER_CREATED,
    SYSTEM_ACTOR,
    Assignment,
    DispatchConfig,
    Plan,
    PlanInput,
)
from dispatch.planner import (
    MAX_ROUTE_AEDS,
    SearchBounds,
    covers,
    role_policy,
    search_bounds,
)
from dispatch.tokens import participant_token
from geo import AedIndex, IndexedAed, TravelMode
from rescue.auth import hash_token
from rescue.bus import Bus
from rescue.bus.outbox import OutboxRows, outbox_rows
from rescue.ids import new_id
from volunteers.positions import MODE_CAP, Candidate, Coverage, search_candidates

logger = logging.getLogger(__name__)

# The search itself is one round trip; this bounds a Redis that accepts but does not answer.
SEARCH_TIMEOUT_S = 0.5
DEGRADED_VOLUNTEERS = "volunteers"
# Plans an alert or a wave tries, each without the unknown volunteers the last one met.
ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Alert:
    """A validated alert, in WGS-84."""

    center_id: str
    external_id: str
    request_hash: bytes
    lat: float
    lng: float
    district: str | None
    address: str | None = None
    reported_at: dt.datetime | None = None
    category: str | None = None
    exercise: bool = False
    callback_url: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class AlertResult:
    """The stored plan (WGS-84, no token), the incident's status, and whether it is new."""

    created: bool
    plan: dict[str, Any]
    status: str


@dataclass(frozen=True, slots=True)
class Search:
    """What the live-position search found; degraded when Redis could not be asked."""

    candidates: list[Candidate]
    excluded: dict[str, int]
    degraded: bool
    # Where a bounded search read every member (empty: it was not bounded; None: degraded).
    coverage: Coverage | None = None


def route_aeds(
    aeds: AedIndex,
    config: DispatchConfig,
    *,
    lat: float,
    lng: float,
    budget_s: float,
    at_local: dt.datetime,
) -> list[tuple[IndexedAed, float]]:
    """The AEDs an alert's plan can use, nearest first: every AED within walking reach (the
    plan lists them) and at least the MAX_ROUTE_AEDS nearest within `aed_radius_m` (a fetcher's
    route may go through them). The plan is the one from every AED within `aed_radius_m`, but a
    province centre holds hundreds within a car's reach, each measured and judged open: the
    look-up's median 0.42 -> 0.20 ms, p90 1.65 -> 0.49 ms (BENCHMARKS.md, session 14)."""
    # A metre over: plan_aeds decides the walking boundary itself, by ETA.
    walk = config.model.reach_m(budget_s, TravelMode.WALK) + 1.0
    near = aeds.within(lat, lng, walk, at_local=at_local)
    if len(near) >= MAX_ROUTE_AEDS:
        return near
    return nearest_route_aeds(aeds, config, lat=lat, lng=lng, budget_s=budget_s, at_local=at_local)


def nearest_route_aeds(
    aeds: AedIndex,
    config: DispatchConfig,
    *,
    lat: float,
    lng: float,
    budget_s: float,
    at_local: dt.datetime,
) -> list[tuple[IndexedAed, float]]:
    """The MAX_ROUTE_AEDS AEDs nearest the patient within `aed_radius_m`, nearest first: those a
    fetcher's route may go through (all a wave's plan uses: it lists no AEDs to anyone)."""
    return aeds.nearest(
        lat, lng, MAX_ROUTE_AEDS, at_local=at_local, max_distance_m=config.aed_radius_m(budget_s)
    )


def bounds_for(
    config: DispatchConfig,
    *,
    budget_s: float,
    aeds: Sequence[tuple[IndexedAed, float]],
    offers_aed: int,
    offers_cpr: int,
    skip: int = 0,
) -> SearchBounds | None:
    """How far the search must read for the configured strategy's plan: the default strategy's
    bounds (`search_bounds`), or None for another strategy (each mode's MODE_CAP nearest)."""
    if config.strategy is not role_policy:
        return None
    return search_bounds(
        model=config.model,
        budget_s=budget_s,
        aeds=aeds,
        offers_aed=offers_aed,
        offers_cpr=offers_cpr,
        skip=skip,
    )


async def find_candidates(
    redis: Redis,
    config: DispatchConfig,
    *,
    lat: float,
    lng: float,
    budget_s: float,
    now: dt.datetime,
    at_local: dt.datetime,
    bounds: SearchBounds | None,
    skip: int = 0,
) -> Search:
    """Candidates within the budget's reach (one Redis round trip), as far as `bounds` says the
    plan can use them (None: each mode's MODE_CAP nearest, and `skip` more); degraded if Redis
    is down."""
    try:
        async with asyncio.timeout(SEARCH_TIMEOUT_S):
            candidates, excluded, coverage = await search_candidates(
                redis,
                lat=lat,
                lng=lng,
                radius_m=config.reach_by_mode(budget_s),
                now=now.timestamp(),
                ttl_s=config.position_ttl_s,
                at_local=at_local,
                limit=MODE_CAP + skip if bounds is None else bounds.nearest,
                waypoints=() if bounds is None else bounds.waypoints,
                per_waypoint=0 if bounds is None else bounds.per_aed,
                covered=bounds is not None,
            )
    except (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError) as exc:
        logger.warning("live positions unavailable, planning without volunteers: %r", exc)
        return Search(candidates=[], excluded={}, degraded=True)
    return Search(candidates=candidates, excluded=excluded, degraded=False, coverage=coverage)


async def checked_plan(
    config: DispatchConfig,
    search: Search,
    inp: PlanInput,
    wider: Callable[[], Awaitable[Search]],
) -> tuple[Search, PlanInput, Plan]:
    """The plan of a bounded search's candidates, unless a member the search left unread could
    change it (`covers`: where the filters dropped many of those read, say a crowd in its quiet
    hours): then the plan of the `wider` search (each mode's MODE_CAP nearest), one more round
    trip. A degraded wider search keeps the first plan."""
    plan = config.strategy(inp)
    if search.coverage is None or covers(plan, inp, search.coverage):
        return search, inp, plan
    logger.info("the bounded search may have missed a responder: searching wider")
    again = await wider()
    if again.degraded:
        return search, inp, plan
    inp = replace(inp, candidates=again.candidates)
    return again, inp, config.strategy(inp)


def local_time(now: dt.datetime, config: DispatchConfig) -> dt.datetime:
    """The deployment's naive local time (opening hours, quiet hours)."""
    return now.astimezone(config.timezone).replace(tzinfo=None)


def offer_rows(assignments: Sequence[Assignment], offer_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The offers of a plan, as jsonb_to_recordset rows."""
    return [
        {
            "id": offer_id,
            "volunteer_id": a.volunteer_id,
            "role": a.role.value,
            "eta_s": render.seconds(a.eta_s),
            "distance_m": render.metres(a.distance_m),
            "aed_id": a.aed.id if a.aed is not None else None,
            "aed": render.aed_snapshot(a.aed) if a.aed is not None else None,
        }
        for a, offer_id in zip(assignments, offer_ids, strict=True)
    ]


def offer_summaries(rows: Sequence[dict[str, Any]], wave: int) -> list[dict[str, Any]]:
    """offer.created event data of each offer (also listed in the offers_sent entry)."""
    return [
        {
            "offer_id": r["id"],
            "volunteer_id": r["volunteer_id"],
            "role": r["role"],
            "wave": wave,
            "eta_s": r["eta_s"],
            "aed_id": r["aed_id"],
        }
        for r in rows
    ]


def offer_created_data(
    summaries: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    *,
    expires_at: dt.datetime,
) -> list[dict[str, Any]]:
    """offer.created event data of each offer (`offer_summaries` of its rows): its summary,
    plus what the volunteer's phone shows (distance, expiry; the AED comes from the worker's
    index), so the push needs no read back from PostgreSQL."""
    expires = expires_at.isoformat()
    return [
        {**summary, "distance_m": r["distance_m"], "expires_at": expires}
        for summary, r in zip(summaries, rows, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class _Draft:
    """A planned incident, rendered: its stored plan and the INSERT_ALERT parameters."""

    stored: dict[str, Any]
    volunteer_ids: list[str]
    params: tuple[Any, ...]  # $1-$29 (the lease, $30, and the callbacks' follow)
    outbox: OutboxRows  # the events as params $25-$29 hold them (published after the commit)
    deliveries: NewDeliveries  # their callbacks, $31-$38

    def args(self, lease: dt.timedelta | None) -> tuple[Any, ...]:
        """INSERT_ALERT's parameters, with the outbox rows' lease (None: the relays publish)."""
        return (*self.params, lease, *self.deliveries.params())


def _draft(
    *,
    alert: Alert,
    config: DispatchConfig,
    search: Search,
    plan: Plan,
    now: dt.datetime,
    sender: CallbackSender | None = None,
) -> _Draft:
    """Everything the one INSERT_ALERT statement stores, computed before the round trip."""
    budget = config.time_budget_s
    incident_id = new_id("inc")
    session_id = new_id("gs")
    participant_id = new_id("gp")
    offer_ids = [new_id("off") for _ in plan.responders]
    degraded = [DEGRADED_VOLUNTEERS] if search.degraded else []
    stored = render.stored_plan(
        incident_id=incident_id,
        external_id=alert.external_id,
        created_at=now,
        lat=alert.lat,
        lng=alert.lng,
        district=alert.district,
        time_budget_s=budget,
        exercise=alert.exercise,
        plan=plan,
        offer_ids=offer_ids,
        session_id=session_id,
        participant_id=participant_id,
        degraded=degraded,
    )
    offers = offer_rows(plan.responders, offer_ids)
    summaries = offer_summaries(offers, 1)
    ref = IncidentRef(
        id=incident_id,
        external_id=alert.external_id,
        center_id=alert.center_id,
        exercise=alert.exercise,
    )
    entries = _first_entries(alert, stored, search, summaries)
    token = participant_token(
        config.token_key, session_id=session_id, participant_id=participant_id
    )
    created: dict[str, Any] = {
        "time_budget_s": budget,
        "district": alert.district,
        "responders": len(summaries),
        "aeds": len(stored["aeds"]),
        "degraded": degraded,
    }
    expires_at = now + dt.timedelta(seconds=config.offer_ttl_s)
    offered = offer_created_data(summaries, offers, expires_at=expires_at)
    events = incident_events(
        ref, [(INCIDENT_CREATED, created), *((OFFER_CREATED, d) for d in offered)], at=now
    )
    volunteer_ids = [a.volunteer_id for a in plan.responders]
    outbox = outbox_rows(events)
    params = (
        incident_id,
        alert.center_id,
        alert.external_id,
        alert.request_hash,
        alert.lat,
        alert.lng,
        alert.address,
        alert.district,
        alert.category,
        alert.exercise,
        alert.note,
        alert.callback_url,
        alert.reported_at,
        budget,
        stored,
        now,
        config.escalation_window_s,
        config.offer_ttl_s,
        offers,
        session_id,
        participant_id,
        hash_token(token),
        [{"type": e.type, "actor": e.actor, "data": entry_data(ref, e.data)} for e in entries],
        volunteer_ids,
        *outbox,
    )
    return _Draft(
        stored=stored,
        volunteer_ids=volunteer_ids,
        params=params,
        outbox=outbox,
        deliveries=NewDeliveries.of(events, sender, claim=True),
    )


async def raise_alert(
    *,
    pool: asyncpg.Pool,
    redis: Redis,
    aeds: AedIndex,
    config: DispatchConfig,
    alert: Alert,
    bus: Bus | None = None,
    callbacks: CallbackSender | None = None,
) -> AlertResult:
    """Plan and store a new incident, or answer the stored plan of a replayed alert.

    With a running `bus`, the new incident's events are published by this worker as soon as
    they are committed (no relay has to be woken and claim them first). With `callbacks`
    (this worker's sender), the statement queues the events' callbacks to 120 too, and the
    sender sends them at once when it has a free slot (the callbacks group leaves them).
    """
    now = dt.datetime.now(dt.UTC)
    at_local = local_time(now, config)
    budget = config.time_budget_s
    nearby = route_aeds(
        aeds, config, lat=alert.lat, lng=alert.lng, budget_s=budget, at_local=at_local
    )
    bounds = bounds_for(
        config,
        budget_s=budget,
        aeds=nearby,
        offers_aed=config.offers_aed,
        offers_cpr=config.offers_cpr,
    )
    search_here = functools.partial(
        find_candidates,
        redis,
        config,
        lat=alert.lat,
        lng=alert.lng,
        budget_s=budget,
        now=now,
        at_local=at_local,
    )
    search = await search_here(bounds=bounds)
    inp = PlanInput(
        lat=alert.lat,
        lng=alert.lng,
        budget_s=budget,
        candidates=search.candidates,
        aeds=nearby,
        model=config.model,
        offers_aed=config.offers_aed,
        offers_cpr=config.offers_cpr,
    )
    search, inp, plan = await checked_plan(
        config, search, inp, functools.partial(search_here, bounds=None)
    )
    lease = bus.claim_lease if bus is not None and bus.publishing else None
    async with pool.acquire() as conn:
        # Volunteers are never deleted, so one re-plan without the unknown ones settles it.
        for _ in range(ATTEMPTS):
            draft = _draft(
                alert=alert,
                config=config,
                search=search,
                plan=plan,
                now=now,
                sender=callbacks,
            )
            row = await conn.fetchrow(queries.INSERT_ALERT, *draft.args(lease))
            if row["incident_id"] is not None:
                break
            if len(row["known_ids"]) == len(draft.volunteer_ids):
                return await _replay(conn, alert)
            inp = replace(inp, exclude=inp.exclude | await unknown_candidates(conn, search))
            plan = config.strategy(inp)
        else:
            raise RuntimeError(f"alert {alert.external_id!r}: offered volunteers keep disappearing")
    # Only now, the connection released: asyncpg releases it in a task of its own, and the
    # caller yields to the loop there; what starts before it (the XADD, its consumers' reads)
    # would run ahead of the response. Started now, they run once the response is written.
    if bus is not None and lease is not None:
        bus.publish_committed(draft.outbox, row["outbox_ids"] or [], done=draft.deliveries.done)
    draft.deliveries.committed(row)
    return AlertResult(created=True, plan=draft.stored, status="open")


async def unknown_candidates(conn: asyncpg.Connection, search: Search) -> frozenset[str]:
    """The candidates PostgreSQL does not know (logged), to plan again without: a live
    position whose volunteer is not in the registry (Redis outlived a rebuilt database)."""
    candidates = [c.volunteer_id for c in search.candidates]
    unknown = frozenset(candidates) - set(await conn.fetchval(queries.KNOWN_VOLUNTEERS, candidates))
    logger.error("live positions of unknown volunteers %s left out of the plan", sorted(unknown))
    return unknown


async def _replay(conn: asyncpg.Connection, alert: Alert) -> AlertResult:
    """The committed incident of the same (center, external_id): same body, same plan."""
    existing = await conn.fetchrow(
        queries.INCIDENT_BY_EXTERNAL_ID, alert.center_id, alert.external_id
    )
    if existing is None:  # pragma: no cover - the conflicting row is committed and never deleted
        raise RuntimeError(f"incident {alert.external_id!r} conflicted but cannot be read")
    if bytes(existing["request_hash"]) != alert.request_hash:
        raise ExternalIdConflict(alert.external_id)
    return AlertResult(created=False, plan=existing["plan"], status=existing["status"])


def _first_entries(
    alert: Alert, stored: dict[str, Any], search: Search, summaries: list[dict[str, Any]]
) -> list[Entry]:
    """alert_received (by the center), plan_made and offers_sent (by the system)."""
    received = Entry(
        "alert_received",
        alert.center_id,
        {
            "external_id": alert.external_id,
            "location": stored["location"],
            "address": alert.address,
            "category": alert.category,
            "reported_at": alert.reported_at.isoformat() if alert.reported_at else None,
            "note": alert.note,
        },
    )
    made = Entry(
        "plan_made",
        SYSTEM_ACTOR,
        {
            "budget_s": stored["time_budget_s"],
            "responders": len(stored["responders"]),
            "aeds": len(stored["aeds"]),
            "candidates": len(search.candidates),
            "excluded": search.excluded,
            "degraded": stored["degraded"],
        },
    )
    entries = [received, made]
    if summaries:
        entries.append(Entry("offers_sent", SYSTEM_ACTOR, {"wave": 1, "offers": summaries}))
    return entries
