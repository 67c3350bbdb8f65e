"""Phone fan-out: the bus group "phones" pushes offers and their updates to volunteers' sockets.

- offer.created -> {"type": "offer", "offer": Offer} (the patient's location is not in an
  open offer);
- offer.accepted/declined/expired/cancelled, responder.status -> {"type": "offer_update",
  "offer": Offer} to the offer's volunteer;
- incident.cancelled/closed -> {"type": "incident_closed", "incident_id", "status", "reason"}
  to every volunteer offered in the incident (reason: the cancel reason, or "closed").

A batch handler (`Bus.subscribe_batch`): a push writes nothing to PostgreSQL, so each read of
the stream costs at most two queries (the offers named, the volunteers of the incidents that
ended) and one pipeline of PUBLISHes, whatever its size. A new offer is rendered from its
offer.created event (which carries distance and expiry) and the worker's AED index, so an
alert's offers reach the phones with no query at all; an older event without those fields,
or one whose AED has left the index, is read back from PostgreSQL as the updates are. A burst
of alerts (six offers each) is pushed at that rate, not one transaction per offer. The bus
acks the batch after the handler returns (and records it soon after); a publish that fails
raises and the whole batch is delivered again, and a worker that dies between the publishes
and the ack publishes them again too (phones may see a message twice, never zero times; a
socket keys offers by id).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from dispatch import queries
from dispatch.models import (
    INCIDENT_CANCELLED,
    INCIDENT_CLOSED,
    OFFER_ACCEPTED,
    OFFER_CANCELLED,
    OFFER_CREATED,
    OFFER_DECLINED,
    OFFER_EXPIRED,
    RESPONDER_STATUS,
    DispatchConfig,
    OfferState,
)
from dispatch.render import aed_snapshot, render_offer
from geo import AedIndex, Crs
from rescue.bus import BatchContext, BatchHandler, Event
from volunteers.channels import push_many_to_phones

logger = logging.getLogger(__name__)

GROUP = "phones"
OFFER_EVENTS = frozenset(
    {
        OFFER_CREATED,
        OFFER_ACCEPTED,
        OFFER_DECLINED,
        OFFER_EXPIRED,
        OFFER_CANCELLED,
        RESPONDER_STATUS,
    }
)
END_EVENTS = frozenset({INCIDENT_CANCELLED, INCIDENT_CLOSED})
TYPES = OFFER_EVENTS | END_EVENTS


def end_message(event: Event) -> dict[str, Any]:
    """The incident_closed message of an incident.cancelled / incident.closed event."""
    cancelled = event.type == INCIDENT_CANCELLED
    return {
        "type": "incident_closed",
        "incident_id": event.data["incident_id"],
        "status": "cancelled" if cancelled else "closed",
        "reason": (event.data.get("reason") or "cancelled") if cancelled else "closed",
    }


def created_offer(event: Event, aeds: AedIndex | None) -> dict[str, Any] | None:
    """The offer of an offer.created event as a row of its table, open; None when the event
    does not carry enough to render it (then it is read from PostgreSQL)."""
    data = event.data
    if "expires_at" not in data or "distance_m" not in data:
        return None
    aed = None
    if data.get("aed_id") is not None:
        indexed = aeds.get(data["aed_id"]) if aeds is not None else None
        if indexed is None:
            return None
        aed = aed_snapshot(indexed)
    return {
        "id": data["offer_id"],
        "incident_id": data["incident_id"],
        "volunteer_id": data["volunteer_id"],
        "role": data["role"],
        "state": OfferState.OPEN.value,
        "eta_s": data["eta_s"],
        "distance_m": data["distance_m"],
        "offered_at": event.at,
        "expires_at": datetime.fromisoformat(data["expires_at"]),
        "exercise": data["exercise"],
        "aed": aed,
    }


def make_handler(
    config: DispatchConfig, aeds: Callable[[], AedIndex | None] = lambda: None
) -> BatchHandler:
    """The "phones" group's batch handler; `aeds` gives the worker's AED index, if loaded."""

    async def handle(events: Sequence[Event], ctx: BatchContext) -> None:
        index = aeds()
        offers: dict[str, Mapping[str, Any]] = {}
        for event in events:
            if event.type == OFFER_CREATED:
                offer = created_offer(event, index)
                if offer is not None:
                    offers[offer["id"]] = offer
        offer_ids = [
            e.data["offer_id"]
            for e in events
            if e.type in OFFER_EVENTS
            and (e.type != OFFER_CREATED or e.data["offer_id"] not in offers)
        ]
        ended = [e.data["incident_id"] for e in events if e.type in END_EVENTS]
        if offer_ids:
            rows = await ctx.pool.fetch(queries.GET_OFFERS_BY_IDS, offer_ids)
            offers.update((row["id"], row) for row in rows)
        offered: dict[str, list[str]] = {}
        if ended:
            for row in await ctx.pool.fetch(queries.OFFERED_VOLUNTEERS_OF, ended):
                offered.setdefault(row["incident_id"], []).append(row["volunteer_id"])
        messages: list[tuple[str, dict[str, Any]]] = []
        for event in events:
            if event.type in END_EVENTS:
                message = end_message(event)
                messages.extend((v, message) for v in offered.get(message["incident_id"], []))
                continue
            offer = offers.get(event.data["offer_id"])
            if offer is None:
                logger.warning("event %s names unknown offer %s", event.id, event.data["offer_id"])
                continue
            rendered = render_offer(offer, crs=Crs.WGS84, config=config)
            if event.type == OFFER_CREATED:
                # Whatever happened since, the first message never carries the patient's place.
                kind = "offer"
                rendered = {**rendered, "incident": None, "guidance": None}
            else:
                kind = "offer_update"
            messages.append((offer["volunteer_id"], {"type": kind, "offer": rendered}))
        await push_many_to_phones(ctx.redis, messages)

    return handle
