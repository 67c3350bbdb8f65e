"""Phone fan-out: the bus group "phones" pushes offers and their updates to volunteers' sockets.

- offer.created -> {"type": "offer", "offer": Offer} (the patient's location is not in an
  open offer);
- offer.accepted/declined/expired/cancelled, responder.status -> {"type": "offer_update",
  "offer": Offer} to the offer's volunteer;
- incident.cancelled/closed -> {"type": "incident_closed", "incident_id", "status", "reason"}
  to every volunteer offered in the incident (reason: the cancel reason, or "closed").

A batch handler (`Bus.subscribe_batch`): a push writes nothing to PostgreSQL, so each read of
the stream costs at most two queries (the offers named, the volunteers of the incidents that
ended) and one pipeline of PUBLISHes, whatever its size. A burst of alerts (six offers each)
is pushed at that rate, not one transaction per offer. The bus records and acks the batch after
the handler returns; a publish that fails raises and the whole batch is delivered again, and a
worker that dies between the publishes and the record publishes them again too (phones may see
a message twice, never zero times; a socket keys offers by id).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
)
from dispatch.render import render_offer
from geo import Crs
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


def make_handler(config: DispatchConfig) -> BatchHandler:
    """The "phones" group's batch handler."""

    async def handle(events: Sequence[Event], ctx: BatchContext) -> None:
        offer_ids = [e.data["offer_id"] for e in events if e.type in OFFER_EVENTS]
        ended = [e.data["incident_id"] for e in events if e.type in END_EVENTS]
        offers = {}
        if offer_ids:
            rows = await ctx.pool.fetch(queries.GET_OFFERS_BY_IDS, offer_ids)
            offers = {row["id"]: row for row in rows}
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
