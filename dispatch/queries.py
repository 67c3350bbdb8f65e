"""SQL of the dispatch package (plain, parameterized; jsonb parameters are Python objects)."""

from __future__ import annotations

from dispatch.callback_sender import CHANNEL as CALLBACKS_CHANNEL
from dispatch.callback_sender import queue_pending
from rescue.bus.constants import NOTIFY_CHANNEL
from rescue.bus.queries import pending_rows


def _entries_and_events(
    *, source: str, incident: str, at: str, entries: int, events: int, lease: int
) -> str:
    """The `entries`, `events` and `pending` CTEs of a statement that stores an incident's
    step whole (INSERT_ALERT, ESCALATE_WAVE), once per row of `source`: the timeline entries
    ($entries: jsonb [{type, actor, data}]) and the outbox events ($events..$events+4, as
    rescue.bus.outbox.outbox_rows gives them), each in the given order, unpublished, with the
    lease ($lease: an interval; NULL claims nothing, see _notified) on publishing them."""
    e = events
    return f"""entries AS (
    INSERT INTO timeline (incident_id, at, type, actor, data)
    SELECT {incident}, {at}, e.type, e.actor, e.data
    FROM {source} CROSS JOIN ROWS FROM (
        jsonb_to_recordset(${entries}::jsonb) AS (type text, actor text, data jsonb)
    ) WITH ORDINALITY AS e(type, actor, data, n)
    ORDER BY e.n
    RETURNING id
),
events AS (
    INSERT INTO outbox (event_id, type, key, data, occurred_at)
    SELECT u.event_id, u.type, u.key, u.data::jsonb, u.occurred_at
    FROM {source} CROSS JOIN unnest(${e}::text[], ${e + 1}::text[], ${e + 2}::text[],
        ${e + 3}::text[], ${e + 4}::timestamptz[])
        WITH ORDINALITY AS u(event_id, type, key, data, occurred_at, n)
    ORDER BY u.n
    RETURNING id
),
pending AS (
    {pending_rows("events", lease=f"now() + ${lease}::interval")}
)"""


def _notified(*, lease: int) -> str:
    """The result column that wakes the relays when the events were not claimed (no lease)."""
    return f"""(SELECT count(pg_notify('{NOTIFY_CHANNEL}', ''))
        FROM (SELECT 1 FROM events LIMIT 1) AS one WHERE ${lease}::interval IS NULL) AS notified"""


def _callbacks(
    *, source: str, incident: str, center: str, own_url: str, at: str, first: int
) -> str:
    """The `hook`, `hooks` and `hooks_pending` CTEs (with `hooks_pending_logged`) of a
    statement that queues the callbacks of its own events (INSERT_ALERT, ESCALATE_WAVE), once
    per row of `source`: the deliveries ($first..$first+4: ids, event ids, types, stages,
    payloads, as dispatch.callbacks.NewDeliveries gives them) to `own_url`, else the
    center's, and their pending rows, claimed ($first+5) for the lease ($first+6), their first
    attempts logged, as the callbacks group's QUEUE_DELIVERIES would (see _callbacks_told for
    $first+7)."""
    f = first
    return f"""hook AS (
    SELECT COALESCE({own_url}, c.callback_url) AS url, c.webhook_secret, c.id AS center_id
    FROM {source} JOIN dispatch_centers c ON c.id = {center}
    WHERE COALESCE({own_url}, c.callback_url) IS NOT NULL AND cardinality(${f}::text[]) > 0
),
hooks AS (
    INSERT INTO webhook_deliveries (id, event_id, event_type, event_at, stage, incident_id,
        center_id, url, payload)
    SELECT d.id, d.event_id, d.event_type, {at}, d.stage, {incident}, hook.center_id, hook.url,
        d.payload::jsonb
    FROM {source} CROSS JOIN hook CROSS JOIN unnest(${f}::text[], ${f + 1}::text[],
        ${f + 2}::text[], ${f + 3}::int[], ${f + 4}::text[])
        WITH ORDINALITY AS d(id, event_id, event_type, stage, payload, n)
    ORDER BY d.n
    RETURNING id, incident_id, event_at, stage, seq
),
{queue_pending("hooks_pending", "hooks s", claimed=f"${f + 5}", lease=f"${f + 6}")}"""


def _callbacks_told(*, first: int) -> str:
    """The result columns of _callbacks: the URL and secret a claimed run is sent with, how
    many were queued, and the NOTIFY that wakes every worker's delivery loop when some were
    queued unclaimed and $first+7 (the caller's own loop cannot take them)."""
    return f"""(SELECT url FROM hook) AS callback_url,
       (SELECT webhook_secret FROM hook) AS webhook_secret,
       (SELECT count(*) FROM hooks) AS callbacks,
       (SELECT count(pg_notify('{CALLBACKS_CHANNEL}', ''))
        FROM (SELECT 1 FROM hooks_pending WHERE attempts = 0 LIMIT 1) AS one
        WHERE ${first + 7}) AS callbacks_told"""


# The whole new incident in one statement, in one implicit transaction (one round trip, no
# BEGIN/COMMIT): the incident, its offers, the guidance session with its dispatcher, the first
# timeline entries and its outbox events with their NOTIFY (the same insert as
# rescue.bus.outbox.EMIT_MANY, params $25-$29 from outbox_rows). ON CONFLICT settles concurrent
# identical alerts: the losers insert nothing and read the winner's row. Nothing is inserted
# unless every offered volunteer ($24) is in the registry: a live position whose volunteer
# PostgreSQL does not know (Redis outlived a rebuilt database) must not fail the alert, so the
# caller plans again without them (known_ids); this check is also what keeps an offer's
# volunteer known (offers have no foreign key to volunteers, whose rows are never deleted:
# migration 010). set_config(..., true) is SET LOCAL: this
# transaction commits durably whatever the session default is. With a lease ($30), the
# outbox rows are claimed for it, as a relay's claim does, and nobody is notified: the
# committing worker publishes them itself (rescue.bus.Bus.publish_committed) and its relay
# stamps them; should it die first, another relay publishes them once the lease is over.
# Without one (NULL: no bus in this process) the relays are woken to publish them.
# The incident's callbacks to 120 are queued here too ($31-$38, dispatch.callbacks
# NewDeliveries; none when this process has no sender), to the alert's URL or else its
# center's: claimed for this worker's sender, which sends them as one run after the commit,
# or else announced to every worker's delivery loop (NOTIFY), as the callbacks group's
# QUEUE_DELIVERIES would (it is told, by the events' entries, to leave them).
INSERT_ALERT = f"""
WITH known AS (
    SELECT coalesce(array_agg(id), '{{}}') AS ids FROM volunteers WHERE id = ANY($24::text[])
),
inc AS (
    INSERT INTO incidents (id, center_id, external_id, request_hash, lat, lng, address,
        district, category, exercise, note, callback_url, reported_at, time_budget_s,
        budget_now_s, plan, next_escalation_at, created_at)
    SELECT $1::text, $2::text, $3::text, $4::bytea, $5::double precision,
        $6::double precision, $7::text, $8::text, $9::text, $10::boolean, $11::text, $12::text,
        $13::timestamptz, $14::integer, $14::integer, $15::jsonb,
        $16::timestamptz + make_interval(secs => $17::double precision), $16::timestamptz
    FROM known
    WHERE cardinality(known.ids) = cardinality($24::text[])
    ON CONFLICT (center_id, external_id) DO NOTHING
    RETURNING id, created_at
),
durable AS (SELECT set_config('synchronous_commit', 'on', true) AS value),
new_offers AS (
    INSERT INTO offers (id, incident_id, volunteer_id, role, wave, eta_s, distance_m, aed_id,
        aed, offered_at, expires_at)
    SELECT o.id, inc.id, o.volunteer_id, o.role, 1, o.eta_s, o.distance_m, o.aed_id, o.aed,
        inc.created_at, inc.created_at + make_interval(secs => $18)
    FROM inc CROSS JOIN jsonb_to_recordset($19::jsonb) AS o(id text, volunteer_id text,
        role text, eta_s integer, distance_m integer, aed_id text, aed jsonb)
    RETURNING id
),
session AS (
    INSERT INTO guidance_sessions (id, incident_id, created_at)
    SELECT $20, inc.id, inc.created_at FROM inc
    RETURNING id
),
participant AS (
    INSERT INTO guidance_participants (participant_id, session_id, role, token_hash, joined_at)
    SELECT $21, session.id, 'dispatcher', $22, $16::timestamptz FROM session
    RETURNING participant_id
),
{
    _entries_and_events(
        source="inc", incident="inc.id", at="inc.created_at", entries=23, events=25, lease=30
    )
},
{
    _callbacks(
        source="inc",
        incident="inc.id",
        center="$2::text",
        own_url="$12::text",
        at="inc.created_at",
        first=31,
    )
}
SELECT (SELECT id FROM inc) AS incident_id,
       (SELECT value FROM durable) AS synchronous_commit,
       (SELECT ids FROM known) AS known_ids,
       (SELECT count(*) FROM new_offers) AS offers,
       (SELECT count(*) FROM participant) AS participants,
       (SELECT count(*) FROM entries) AS entries,
       (SELECT array_agg(id) FROM events) AS outbox_ids,
       {_notified(lease=30)},
       {_callbacks_told(first=31)}
"""

# Which of these volunteer ids the registry knows (the rare re-plan of an alert).
KNOWN_VOLUNTEERS = "SELECT coalesce(array_agg(id), '{}') FROM volunteers WHERE id = ANY($1::text[])"


INCIDENT_BY_EXTERNAL_ID = """
SELECT id, request_hash, plan, status FROM incidents WHERE center_id = $1 AND external_id = $2
"""

_INCIDENT_COLUMNS = """
id, center_id, external_id, lat, lng, address, district, category, exercise, note,
callback_url, reported_at, status, time_budget_s, budget_now_s, wave, plan,
next_escalation_at, created_at, closed_at, outcome
"""

# $2 is the dispatch center asking, or NULL for an administrator (who sees every incident).
GET_INCIDENT = f"""
SELECT {_INCIDENT_COLUMNS} FROM incidents
WHERE id = $1 AND ($2::text IS NULL OR center_id = $2)
"""

INCIDENT_OFFERS = """
SELECT id, volunteer_id, role, state, wave, eta_s, distance_m, aed_id, offered_at, expires_at,
       answered_at, last_status, engaged
FROM offers WHERE incident_id = $1 ORDER BY wave, eta_s, id
"""

INCIDENT_TIMELINE = """
SELECT at, type, actor, data FROM timeline WHERE incident_id = $1 ORDER BY id
"""

INSERT_TIMELINE = """
INSERT INTO timeline (incident_id, at, type, actor, data) VALUES ($1, $2, $3, $4, $5)
"""

# An offer still open, said as none of the other states (the only others the CHECK allows),
# in the statements that find offers by key (id, incident, volunteer): a qual of
# `state = 'open'` matches offers_open_expiry_idx's predicate, and statistics taken while no
# offer was open make reading that index whole look free, so the planner read every open offer
# instead of the key's few (as the delivery statements did, dispatch.callback_sender). The
# expiry sweep and DUE_WORK say `state = 'open'`: they read that index on purpose.
_OPEN = "state NOT IN ('accepted', 'declined', 'expired', 'cancelled')"

# Cancel or close, atomically once: the incident, its open offers, its engagements and its
# guidance session, in incident-then-offers lock order (as accept and escalation take them).
END_INCIDENT = f"""
WITH ended AS (
    UPDATE incidents
    SET status = $3, closed_at = now(), next_escalation_at = NULL, outcome = $4
    WHERE id = $1 AND status = 'open' AND ($2::text IS NULL OR center_id = $2)
    RETURNING {_INCIDENT_COLUMNS}
),
cancelled AS (
    UPDATE offers o SET state = 'cancelled', answered_at = now()
    FROM ended WHERE o.incident_id = ended.id AND o.{_OPEN}
    RETURNING o.id, o.volunteer_id, o.role
),
released AS (
    UPDATE offers o SET engaged = false
    FROM ended WHERE o.incident_id = ended.id AND o.engaged
    RETURNING o.volunteer_id
),
session AS (
    UPDATE guidance_sessions s SET closed_at = now()
    FROM ended WHERE s.incident_id = ended.id AND s.closed_at IS NULL
    RETURNING s.id
)
SELECT ended.*,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
            'id', id, 'volunteer_id', volunteer_id, 'role', role)), '[]'::jsonb)
        FROM cancelled) AS cancelled_offers,
       (SELECT coalesce(array_agg(volunteer_id), '{{}}') FROM released) AS released,
       (SELECT count(*) FROM session) AS sessions_closed
FROM ended
"""

INCIDENT_EXISTS = """
SELECT status FROM incidents WHERE id = $1 AND ($2::text IS NULL OR center_id = $2)
"""

# The volunteers offered in any of these incidents (the phones' fan-out of a batch of ends).
OFFERED_VOLUNTEERS_OF = """
SELECT DISTINCT incident_id, volunteer_id FROM offers WHERE incident_id = ANY($1::text[])
"""

# An offer as its volunteer sees it, with its incident and the volunteer's guidance participant.
_OFFER_VIEW = """
SELECT o.id, o.incident_id, o.volunteer_id, o.role, o.state, o.wave, o.eta_s, o.distance_m,
       o.aed_id, o.aed, o.offered_at, o.expires_at, o.answered_at, o.last_status, o.engaged,
       i.exercise, i.lat, i.lng, i.address, i.external_id, i.center_id,
       i.status AS incident_status, gs.id AS session_id, gp.participant_id
FROM offers o
JOIN incidents i ON i.id = o.incident_id
LEFT JOIN guidance_sessions gs ON gs.incident_id = o.incident_id
LEFT JOIN guidance_participants gp ON gp.session_id = gs.id AND gp.volunteer_id = o.volunteer_id
"""

GET_OFFER = _OFFER_VIEW + "WHERE o.id = $1 AND o.volunteer_id = $2"

GET_OFFERS_BY_IDS = _OFFER_VIEW + "WHERE o.id = ANY($1::text[])"

# Offers a volunteer can act on: open ones (not yet expired, of an open incident) and the
# accepted one it is still engaged in (a phone that restarts finds its current job).
MY_OFFERS = (
    _OFFER_VIEW
    + """
WHERE o.volunteer_id = $1
  AND ((o.state = 'open' AND o.expires_at > now() AND i.status = 'open') OR o.engaged)
  AND ($2::text IS NULL OR o.id > $2)
ORDER BY o.id
LIMIT $3
"""
)

# First acceptance wins: the conditional UPDATE settles a race on the same offer, and the
# partial unique index offers_one_engagement_idx a race between one volunteer's offers.
# The incident row is share-locked first (the same order cancel/close take), so an incident
# ending concurrently either sees this engagement or refuses it.
ACCEPT_OFFER = f"""
WITH inc AS (
    SELECT id FROM incidents WHERE id = $3 AND status = 'open' FOR SHARE
),
accepted AS (
    UPDATE offers SET state = 'accepted', engaged = true, answered_at = now()
    WHERE id = $1 AND volunteer_id = $2 AND {_OPEN} AND expires_at > now()
      AND incident_id IN (SELECT id FROM inc)
    RETURNING id
),
participant AS (
    INSERT INTO guidance_participants (participant_id, session_id, role, volunteer_id, token_hash)
    SELECT $4, $5, 'responder', $2, $6 FROM accepted
    RETURNING participant_id
)
SELECT (SELECT id FROM accepted) AS offer_id,
       (SELECT participant_id FROM participant) AS participant_id
"""

# After an acceptance commits: the volunteer's other open offers are withdrawn (they cannot be
# accepted while engaged, and an open one would keep its incident from escalating early). The
# conditional UPDATE settles a race with the incident ending: whichever changes the row first
# reports it, the other skips it.
WITHDRAW_OTHER_OFFERS = f"""
UPDATE offers o SET state = 'cancelled', answered_at = now()
FROM incidents i
WHERE o.volunteer_id = $1 AND o.{_OPEN} AND o.id <> $2 AND i.id = o.incident_id
RETURNING o.id, o.incident_id, o.role, i.external_id, i.center_id, i.exercise
"""

DECLINE_OFFER = f"""
UPDATE offers o SET state = 'declined', answered_at = now()
FROM incidents i
WHERE o.id = $1 AND o.volunteer_id = $2 AND o.{_OPEN} AND o.expires_at > now()
  AND i.id = o.incident_id
RETURNING o.id, o.incident_id, o.role, i.external_id, i.center_id, i.exercise
"""

# $4: the marker ends the engagement (handed_over, withdrawn).
OFFER_STATUS = """
UPDATE offers o SET last_status = $3, engaged = o.engaged AND NOT $4
FROM incidents i
WHERE o.id = $1 AND o.volunteer_id = $2 AND o.state = 'accepted' AND o.engaged
  AND i.id = o.incident_id
RETURNING o.id, o.incident_id, o.role, i.external_id, i.center_id, i.exercise
"""

# Escalate now rather than at the next window when a role has nobody left who might come:
# every offer of it declined, expired or withdrawn. Only while the reach can still grow.
ESCALATE_EARLY = """
UPDATE incidents SET next_escalation_at = now()
WHERE id = $1 AND status = 'open' AND budget_now_s < $3
  AND (next_escalation_at IS NULL OR next_escalation_at > now())
  AND NOT EXISTS (
      SELECT 1 FROM offers
      WHERE incident_id = $1 AND role = $2
        AND ((state = 'open' AND expires_at > now())
             OR (state = 'accepted' AND last_status IS DISTINCT FROM 'withdrawn')))
RETURNING id
"""

# --- Escalation -----------------------------------------------------------------------------

# Whether the escalation loop has work now, in one read on the two partial indexes: its idle
# rounds, nearly all of them, cost one round trip rather than a transaction and a claim.
DUE_WORK = """
SELECT EXISTS (SELECT 1 FROM offers WHERE state = 'open' AND expires_at <= now()) AS offers,
       EXISTS (SELECT 1 FROM incidents
               WHERE status = 'open' AND next_escalation_at <= now()) AS incidents
"""

# Claim due incidents: each is leased (its timer pushed to now + $2) and handled outside the
# claiming transaction, so a worker that dies mid-wave only delays it until the lease ends.
CLAIM_DUE_INCIDENTS = """
WITH due AS (
    SELECT id FROM incidents
    WHERE status = 'open' AND next_escalation_at <= now()
    ORDER BY next_escalation_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE incidents i SET next_escalation_at = now() + make_interval(secs => $2)
FROM due WHERE i.id = due.id
RETURNING i.id, i.center_id, i.external_id, i.exercise, i.lat, i.lng, i.wave, i.budget_now_s,
          i.next_escalation_at AS lease_until
"""

INCIDENT_OFFER_STATE = """
SELECT volunteer_id, role, state, last_status, aed_id, expires_at > now() AS live
FROM offers WHERE incident_id = $1
"""

# Nothing (more) to escalate: stop the timer, unless something re-armed it meanwhile.
STOP_ESCALATION = """
UPDATE incidents SET next_escalation_at = NULL
WHERE id = $1 AND next_escalation_at = $2
"""

# The next wave in one statement, in one implicit transaction, as INSERT_ALERT stores an
# alert: the incident advanced (only while open and still at the wave this worker planned
# from, $2), the wave's offers, its timeline entries and its outbox events (with a lease, $16,
# claimed for the committing worker to publish, as INSERT_ALERT's; without one the relays are
# woken). Nothing is stored unless every offered volunteer ($10) is in the registry (the caller
# plans again without the unknown ones; as for INSERT_ALERT, the only check of an offer's
# volunteer) and nothing when another worker ran this wave or the
# incident ended: `wave` is then NULL. An offer to someone already offered in this incident is
# excluded by the planner; should one slip through, the unique (incident, volunteer) fails the
# whole statement, so the events never announce an offer that was not stored. The wave's
# callbacks are queued here too ($17-$24, as INSERT_ALERT's), never claimed: the incident's
# earlier events may still be on their way, and its worker's delivery loop (woken after the
# commit) or, when that one has no free slot, any worker's (NOTIFY) sends them in order.
ESCALATE_WAVE = f"""
WITH known AS (
    SELECT coalesce(array_agg(id), '{{}}') AS ids FROM volunteers WHERE id = ANY($10::text[])
),
advanced AS (
    UPDATE incidents i
    SET wave = i.wave + 1, budget_now_s = $3::integer,
        next_escalation_at = CASE WHEN $3::integer < $4::integer
                                  THEN now() + make_interval(secs => $5::double precision) END
    FROM known
    WHERE i.id = $1 AND i.status = 'open' AND i.wave = $2::integer
      AND cardinality(known.ids) = cardinality($10::text[])
    RETURNING i.wave, i.center_id, i.callback_url
),
new_offers AS (
    INSERT INTO offers (id, incident_id, volunteer_id, role, wave, eta_s, distance_m, aed_id,
        aed, offered_at, expires_at)
    SELECT o.id, $1, o.volunteer_id, o.role, advanced.wave, o.eta_s, o.distance_m, o.aed_id,
        o.aed, $8::timestamptz, $8::timestamptz + make_interval(secs => $6::double precision)
    FROM advanced CROSS JOIN jsonb_to_recordset($7::jsonb) AS o(id text, volunteer_id text,
        role text, eta_s integer, distance_m integer, aed_id text, aed jsonb)
    RETURNING id
),
{
    _entries_and_events(
        source="advanced", incident="$1", at="$8::timestamptz", entries=9, events=11, lease=16
    )
},
{
    _callbacks(
        source="advanced",
        incident="$1",
        center="advanced.center_id",
        own_url="advanced.callback_url",
        at="$8::timestamptz",
        first=17,
    )
}
SELECT (SELECT wave FROM advanced) AS wave,
       (SELECT ids FROM known) AS known_ids,
       (SELECT count(*) FROM new_offers) AS offers,
       (SELECT count(*) FROM entries) AS entries,
       (SELECT array_agg(id) FROM events) AS outbox_ids,
       {_notified(lease=16)},
       {_callbacks_told(first=17)}
"""

# Expire overdue open offers of any incident (a sweep: escalation may have stopped).
EXPIRE_OFFERS = """
WITH due AS (
    SELECT id FROM offers
    WHERE state = 'open' AND expires_at <= now()
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE offers o SET state = 'expired'
FROM due, incidents i
WHERE o.id = due.id AND i.id = o.incident_id
RETURNING o.id, o.volunteer_id, o.role, o.incident_id, i.external_id, i.center_id, i.exercise
"""
