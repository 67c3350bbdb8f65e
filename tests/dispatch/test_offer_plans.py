"""The statements that answer or end offers read them by key whatever PostgreSQL's statistics
say (dispatch.queries._OPEN), as the delivery statements do (test_callback_plans.py).
Statistics taken while no offer was open made `state = 'open'` look free to read through
offers_open_expiry_idx, whole: every open offer of the city for one volunteer's answer.

Each statement runs under EXPLAIN ANALYZE, planned generic and custom, on offers analysed
while none was open, then many opened; what counts is how many offers it read."""

from __future__ import annotations

import re

import asyncpg
import pytest

from dispatch.queries import (
    _OPEN,
    ACCEPT_OFFER,
    DECLINE_OFFER,
    END_INCIDENT,
    WITHDRAW_OTHER_OFFERS,
)
from tests.helpers import PLAN_MODES, checked_states, insert_volunteer, rows_read

TABLE = "offers"
CENTER = "ctr_offerplans"
HISTORY = 2000  # expired, five per closed incident, analysed
OPEN = 1500  # open after the ANALYZE, five per open incident

_INCIDENTS = """
INSERT INTO incidents (id, center_id, external_id, request_hash, lat, lng, time_budget_s,
                       budget_now_s, plan, status)
SELECT 'inc_' || $1 || g, $2, $1 || g, '\\x00', 36.07, 120.38, 300, 300, '{}', $3
FROM generate_series(0, $4 - 1) g
"""

# Offers five per incident of `tag`, to volunteers nobody else is offered to.
_OFFERS = """
INSERT INTO offers (id, incident_id, volunteer_id, role, state, eta_s, distance_m, expires_at)
SELECT 'off_' || $1 || g, 'inc_' || $1 || (g / 5), 'vol_' || $1 || g, 'cpr', $2, 120, 150,
       now() + make_interval(secs => $3)
FROM generate_series(0, $4 - 1) g
"""


async def offers(conn: asyncpg.Connection, tag: str, count: int, *, state: str) -> None:
    """`count` offers in incidents of their own (open if the offers are), five per incident."""
    incident_status = "open" if state == "open" else "closed"
    await conn.execute(_INCIDENTS, tag, CENTER, incident_status, (count + 4) // 5)
    expires_in = 3600.0 if state == "open" else -86400.0
    await conn.execute(_OFFERS, tag, state, expires_in, count)


@pytest.fixture(params=PLAN_MODES)
async def stale(request: pytest.FixtureRequest, pg: asyncpg.Connection) -> asyncpg.Connection:
    """Offers analysed while none was open; then many open, in incidents of their own."""
    await pg.execute(
        """INSERT INTO dispatch_centers (id, name, api_key_hash, webhook_secret)
           VALUES ($1, 'offer plans', '\\x00', 'secret')""",
        CENTER,
    )
    await offers(pg, "hist", HISTORY, state="expired")
    await pg.execute("ANALYZE incidents, offers")
    await offers(pg, "open", OPEN, state="open")
    await pg.execute(f"SET plan_cache_mode = {request.param}")
    return pg


async def mine(conn: asyncpg.Connection, volunteer_id: str) -> tuple[str, str]:
    """Two open offers to the volunteer, in two open incidents: (offer, other offer)."""
    await conn.execute(_INCIDENTS, "me", CENTER, "open", 2)
    await conn.execute(
        """INSERT INTO offers (id, incident_id, volunteer_id, role, eta_s, distance_m, expires_at)
           VALUES ('off_me0', 'inc_me0', $1, 'cpr', 90, 100, now() + interval '1 minute'),
                  ('off_me1', 'inc_me1', $1, 'cpr', 90, 100, now() + interval '1 minute')""",
        volunteer_id,
    )
    return "off_me0", "off_me1"


async def state(conn: asyncpg.Connection, offer_id: str) -> str:
    return await conn.fetchval("SELECT state FROM offers WHERE id = $1", offer_id)


async def test_an_acceptance_reads_its_offer(stale: asyncpg.Connection) -> None:
    volunteer_id, _ = await insert_volunteer(stale)
    offer, _ = await mine(stale, volunteer_id)
    await stale.execute(
        "INSERT INTO guidance_sessions (id, incident_id) VALUES ('gs_me', 'inc_me0')"
    )
    await stale.execute(f"PREPARE accept(text, text, text, text, text, bytea) AS {ACCEPT_OFFER}")
    args = f"('{offer}', '{volunteer_id}', 'inc_me0', 'gp_me', 'gs_me', '\\x01')"
    assert await rows_read(stale, TABLE, "accept", args) <= 5
    assert await state(stale, offer) == "accepted"


async def test_a_decline_reads_its_offer(stale: asyncpg.Connection) -> None:
    volunteer_id, _ = await insert_volunteer(stale)
    offer, _ = await mine(stale, volunteer_id)
    await stale.execute(f"PREPARE decline(text, text) AS {DECLINE_OFFER}")
    assert await rows_read(stale, TABLE, "decline", f"('{offer}', '{volunteer_id}')") <= 5
    assert await state(stale, offer) == "declined"


async def test_withdrawing_a_volunteers_other_offers_reads_theirs(
    stale: asyncpg.Connection,
) -> None:
    volunteer_id, _ = await insert_volunteer(stale)
    offer, other = await mine(stale, volunteer_id)
    await stale.execute(f"PREPARE withdraw(text, text) AS {WITHDRAW_OTHER_OFFERS}")
    assert await rows_read(stale, TABLE, "withdraw", f"('{volunteer_id}', '{offer}')") <= 5
    assert (await state(stale, offer), await state(stale, other)) == ("open", "cancelled")


async def test_ending_an_incident_reads_its_offers(stale: asyncpg.Connection) -> None:
    await stale.execute(f"PREPARE ending(text, text, text, jsonb) AS {END_INCIDENT}")
    read = await rows_read(stale, TABLE, "ending", "('inc_open7', NULL, 'cancelled', NULL)")
    assert read <= 15  # its five offers (each looked for by its incident, then by engagement)
    states = await stale.fetch("SELECT state FROM offers WHERE incident_id = 'inc_open7'")
    assert [r["state"] for r in states] == ["cancelled"] * 5


async def test_none_of_the_other_states_is_open(pg: asyncpg.Connection) -> None:
    # The statements say open that way: every state the CHECK allows but open must be in
    # dispatch.queries._OPEN, or it would be taken for open.
    others = set(re.findall(r"'(\w+)'", _OPEN))
    assert await checked_states(pg, "offers") == others | {"open"}
