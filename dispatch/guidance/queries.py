"""SQL of the guidance sessions (plain, parameterized; jsonb parameters are Python objects)."""

from __future__ import annotations

# A token's participant (the token is stored as its sha256 only).
PARTICIPANT_BY_TOKEN = """
SELECT p.participant_id, p.session_id, p.role, p.volunteer_id, s.incident_id
FROM guidance_participants p JOIN guidance_sessions s ON s.id = p.session_id
WHERE p.token_hash = $1
"""

_SESSION = """
SELECT s.id, s.incident_id, s.created_at, s.closed_at, s.step, s.step_at,
       i.status, i.external_id, i.center_id, i.exercise, i.outcome
FROM guidance_sessions s JOIN incidents i ON i.id = s.incident_id
"""

SESSION = _SESSION + "WHERE s.id = $1"

SESSION_OF_INCIDENT = _SESSION + "WHERE s.incident_id = $1"

# Participants with their offer (responders): role, last status, still engaged.
PARTICIPANTS = """
SELECT p.participant_id, p.role, p.volunteer_id, p.joined_at,
       o.role AS responder_role, o.last_status, o.engaged
FROM guidance_participants p
JOIN guidance_sessions s ON s.id = p.session_id
LEFT JOIN offers o ON o.incident_id = s.incident_id AND o.volunteer_id = p.volunteer_id
WHERE p.session_id = $1
ORDER BY p.joined_at, p.participant_id
"""

PARTICIPANT_IDS = "SELECT participant_id FROM guidance_participants WHERE session_id = $1"

# The entries a session shows (markers, steps, chat, joins, the end), in record order.
SESSION_TIMELINE = """
SELECT id, at, type, actor, data FROM timeline
WHERE incident_id = $1 AND type = ANY($2::text[])
ORDER BY id
"""

# The timeline entry written with a bus event (same instant, same type; by actor if known).
ENTRY_OF_EVENT = """
SELECT id, at, type, actor, data FROM timeline
WHERE incident_id = $1 AND type = $2 AND at = $3 AND ($4::text IS NULL OR actor = $4)
ORDER BY id DESC
LIMIT 1
"""

# Writes wait for an incident ending concurrently and then see it ended (the same lock order
# as acceptance: the incident first), so nothing is recorded in a session after its end.
LOCK_OPEN_INCIDENT = """
SELECT id, external_id, center_id, exercise FROM incidents
WHERE id = $1 AND status = 'open'
FOR SHARE
"""

INSERT_ENTRY = """
INSERT INTO timeline (incident_id, at, type, actor, data) VALUES ($1, $2, $3, $4, $5)
RETURNING id
"""

SET_STEP = "UPDATE guidance_sessions SET step = $2, step_at = $3 WHERE id = $1"

# A responder's accepted offer in its session's incident (one offer per volunteer and incident).
ACCEPTED_OFFER = """
SELECT id, engaged FROM offers WHERE incident_id = $1 AND volunteer_id = $2 AND state = 'accepted'
"""
