"""SQL of the demo loader: bulk COPY into a temporary table, then an idempotent insert."""

from __future__ import annotations

from rescue.demo.aeds import DemoAed
from rescue.demo.volunteers import DemoVolunteer

AED_COLUMNS: tuple[str, ...] = DemoAed._fields
VOLUNTEER_COLUMNS: tuple[str, ...] = DemoVolunteer._fields

AED_STAGE = "demo_aeds_stage"
VOLUNTEER_STAGE = "demo_volunteers_stage"

_AED_LIST = ", ".join(AED_COLUMNS)
_VOLUNTEER_LIST = ", ".join(VOLUNTEER_COLUMNS)

# Only the columns the demo fills, without constraints: COPY is fast, the insert checks.
CREATE_AED_STAGE = (
    f"CREATE TEMP TABLE {AED_STAGE} ON COMMIT DROP AS SELECT {_AED_LIST} FROM aeds WITH NO DATA"
)
CREATE_VOLUNTEER_STAGE = (
    f"CREATE TEMP TABLE {VOLUNTEER_STAGE} ON COMMIT DROP AS"
    f" SELECT {_VOLUNTEER_LIST} FROM volunteers WITH NO DATA"
)
# ON CONFLICT without a target skips a row clashing on any unique key (id, serial_no,
# cert_number): a second load, or a real row already holding that serial, creates nothing.
INSERT_AEDS = (
    f"INSERT INTO aeds ({_AED_LIST}) SELECT {_AED_LIST} FROM {AED_STAGE} ON CONFLICT DO NOTHING"
)
INSERT_VOLUNTEERS = (
    f"INSERT INTO volunteers ({_VOLUNTEER_LIST}) SELECT {_VOLUNTEER_LIST} FROM {VOLUNTEER_STAGE}"
    " ON CONFLICT DO NOTHING"
)
ANALYZE = "ANALYZE aeds, volunteers"

# Demo ids share a prefix (kind and fixed time part); LIKE patterns built from it.
COUNT_AEDS = "SELECT count(*) FROM aeds WHERE id LIKE $1"
COUNT_VOLUNTEERS = "SELECT count(*) FROM volunteers WHERE id LIKE $1"
DEMO_PRESENT = (
    "SELECT EXISTS (SELECT 1 FROM aeds WHERE id = $1)"
    " AND EXISTS (SELECT 1 FROM volunteers WHERE id = $2)"
)
