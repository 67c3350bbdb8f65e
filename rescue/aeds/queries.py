"""SQL of the AED inventory."""

from __future__ import annotations

from rescue.aeds.models import COLUMNS

# PostgreSQL type of each writable column, for the unnest-based bulk writes of an import.
_TYPES = {
    "lat": "float8",
    "lng": "float8",
    "indoor": "bool",
    "level": "int4",
    "pads_expire_on": "date",
    "battery_expire_on": "date",
    "last_inspected_on": "date",
}
_SQL_TYPES = [_TYPES.get(column, "text") for column in COLUMNS]

SELECT_COLUMNS = "id, " + ", ".join(COLUMNS) + ", created_at, updated_at"

INSERT_AED = f"""
INSERT INTO aeds (id, {", ".join(COLUMNS)})
VALUES ({", ".join(f"${n}" for n in range(1, len(COLUMNS) + 2))})
RETURNING {SELECT_COLUMNS}
"""

GET_AED = f"SELECT {SELECT_COLUMNS} FROM aeds WHERE id = $1"

GET_AED_FOR_UPDATE = f"SELECT {SELECT_COLUMNS} FROM aeds WHERE id = $1 FOR UPDATE"

UPDATE_AED = f"""
UPDATE aeds SET {", ".join(f"{c} = ${n}" for n, c in enumerate(COLUMNS, 2))}, updated_at = now()
WHERE id = $1
RETURNING {SELECT_COLUMNS}
"""

# Retiring twice is a no-op that keeps the first retirement's updated_at.
RETIRE_AED = """
UPDATE aeds
SET status = 'retired',
    updated_at = CASE WHEN status = 'retired' THEN updated_at ELSE now() END
WHERE id = $1
RETURNING id
"""

# $1 cursor (id after), $2 statuses (NULL: every status but retired), $3 district adcode,
# $4..$7 WGS-84 bounds (min_lat, min_lng, max_lat, max_lng), $8 ILIKE pattern, $9 limit.
LIST_AEDS = f"""
SELECT {SELECT_COLUMNS} FROM aeds
WHERE ($1::text IS NULL OR id > $1)
  AND (CASE WHEN $2::text[] IS NULL THEN status <> 'retired' ELSE status = ANY($2::text[]) END)
  AND ($3::text IS NULL OR district = $3)
  AND ($4::float8 IS NULL OR (lat BETWEEN $4 AND $6 AND lng BETWEEN $5 AND $7))
  AND ($8::text IS NULL OR name ILIKE $8 OR address ILIKE $8 OR serial_no ILIKE $8)
ORDER BY id
LIMIT $9
"""

EXPORT_AEDS = f"SELECT {SELECT_COLUMNS} FROM aeds WHERE status <> 'retired' ORDER BY id"

# $1: the last day of the look-ahead window; $2: inspections before this day are over a year old.
MAINTENANCE_CANDIDATES = f"""
SELECT {SELECT_COLUMNS} FROM aeds
WHERE status <> 'retired'
  AND (status IN ('maintenance', 'missing')
       OR pads_expire_on <= $1
       OR battery_expire_on <= $1
       OR last_inspected_on IS NULL
       OR last_inspected_on < $2)
"""

INDEXABLE_AEDS = f"SELECT {SELECT_COLUMNS} FROM aeds WHERE status <> 'retired'"

AEDS_BY_IDS = f"SELECT {SELECT_COLUMNS} FROM aeds WHERE id = ANY($1::text[])"

# Imports take this lock so that matching rows to AEDs and writing them is atomic with respect
# to every other AED write; reads (and the alert path, which reads the index) are not blocked.
LOCK_FOR_IMPORT = "LOCK TABLE aeds IN SHARE ROW EXCLUSIVE MODE"

# The AEDs an import's rows may refer to: by id, serial_no, OSM id, or, for rows without any of
# these, an AED without them either, with the same name at the same position.
IMPORT_CANDIDATES = f"""
SELECT {SELECT_COLUMNS} FROM aeds
WHERE id = ANY($1::text[])
   OR serial_no = ANY($2::text[])
   OR osm_id = ANY($3::text[])
   OR (serial_no IS NULL AND osm_id IS NULL
       AND (name, lat, lng) IN (SELECT * FROM unnest($4::text[], $5::float8[], $6::float8[])))
"""

_UNNEST = ", ".join(f"${n}::{t}[]" for n, t in enumerate(["text", *_SQL_TYPES], 1))

BULK_INSERT = f"""
INSERT INTO aeds (id, {", ".join(COLUMNS)})
SELECT * FROM unnest({_UNNEST})
"""

BULK_UPDATE = f"""
UPDATE aeds AS a
SET {", ".join(f"{c} = u.{c}" for c in COLUMNS)}, updated_at = now()
FROM unnest({_UNNEST}) AS u(id, {", ".join(COLUMNS)})
WHERE a.id = u.id
"""
