"""Phone fan-out: the bus group "phones" pushes offers and their updates to volunteers' sockets.

- offer.created -> {"type": "offer", "offer": Offer} (the patient's location is not in an
  open offer);
- offer.accepted/declined/expired/cancelled, responder.status -> {"type": "offer_update",
  "offer": Offer} to the offer's volunteer;
- incident.cancelled/closed -> {"type": "incident_closed", "incident_id", "status", "reason"}
  to every volunteer offered in the incident (reason: the cancel reason, or "closed").

Subscribed transactionally: the event is recorded as processed in the handler's transaction, so
a redelivery of a handled event pushes nothing. A push that fails raises, the transaction rolls
back and the bus delivers the event again (phones may see a message twice, never zero times).
"""

from __future__ import annotations

import logging

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
from rescue.bus import Event, Handler, HandlerContext
from volunteers.channels import push_to_phone

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


def make_handler(config: DispatchConfig) -> Handler:
    """The "phones" group's handler."""

    async def handle(event: Event, ctx: HandlerContext) -> None:
        conn = ctx.conn
        if event.type in END_EVENTS:
            incident_id = event.data["incident_id"]
            cancelled = event.type == INCIDENT_CANCELLED
            message = {
                "type": "incident_closed",
                "incident_id": incident_id,
                "status": "cancelled" if cancelled else "closed",
                "reason": (event.data.get("reason") or "cancelled") if cancelled else "closed",
            }
            for row in await conn.fetch(queries.OFFERED_VOLUNTEERS, incident_id):
                await push_to_phone(ctx.redis, row["volunteer_id"], message)
            return
        offer = await conn.fetchrow(queries.GET_OFFER_BY_ID, event.data["offer_id"])
        if offer is None:
            logger.warning("event %s names unknown offer %s", event.id, event.data["offer_id"])
            return
        kind = "offer" if event.type == OFFER_CREATED else "offer_update"
        rendered = render_offer(offer, crs=Crs.WGS84, config=config)
        if kind == "offer":
            # Whatever happened since, the first message never carries the patient's location.
            rendered = {**rendered, "incident": None, "guidance": None}
        await push_to_phone(ctx.redis, offer["volunteer_id"], {"type": kind, "offer": rendered})

    return handle
