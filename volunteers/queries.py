"""SQL of the volunteer registry (plain parameterized statements)."""

COLUMNS = """id, name, phone, cert_number, cert_issuer, cert_issued_on, cert_expires_on,
    travel_mode, status, quiet_hours, home_district, created_at"""

INSERT_VOLUNTEER = f"""
INSERT INTO volunteers (id, name, phone, cert_number, cert_issuer, cert_issued_on,
    cert_expires_on, travel_mode, status, quiet_hours, home_district, token_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
RETURNING {COLUMNS}
"""

GET_VOLUNTEER = f"SELECT {COLUMNS} FROM volunteers WHERE id = $1"

# Check-in holds a share lock while it writes Redis, so an admin's PATCH (which then refreshes
# the Redis copy) cannot slip between reading the row and writing its copy.
GET_VOLUNTEER_FOR_SHARE = f"SELECT {COLUMNS} FROM volunteers WHERE id = $1 FOR SHARE"

GET_VOLUNTEER_FOR_UPDATE = f"SELECT {COLUMNS} FROM volunteers WHERE id = $1 FOR UPDATE"

UPDATE_VOLUNTEER = f"""
UPDATE volunteers SET name = $2, phone = $3, cert_number = $4, cert_issuer = $5,
    cert_issued_on = $6, cert_expires_on = $7, travel_mode = $8, status = $9,
    quiet_hours = $10, home_district = $11, updated_at = now()
WHERE id = $1
RETURNING {COLUMNS}
"""

# $1 cursor (id after), $2 status, $3 district, $4 ILIKE pattern, $5/$6 expiry range, $7 limit.
LIST_VOLUNTEERS = f"""
SELECT {COLUMNS} FROM volunteers
WHERE ($1::text IS NULL OR id > $1)
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR home_district = $3)
  AND ($4::text IS NULL OR name ILIKE $4 OR phone ILIKE $4 OR cert_number ILIKE $4)
  AND ($5::date IS NULL OR cert_expires_on >= $5)
  AND ($6::date IS NULL OR cert_expires_on <= $6)
ORDER BY id
LIMIT $7
"""

# Returns the replaced hash so every worker can drop it from its cache (NULL: had no token).
ROTATE_TOKEN = """
UPDATE volunteers AS v SET token_hash = $2, updated_at = now()
FROM (SELECT id, token_hash FROM volunteers WHERE id = $1 FOR UPDATE) AS old
WHERE v.id = old.id
RETURNING old.token_hash AS old_hash
"""

GET_METAS = """
SELECT id, travel_mode, cert_expires_on, status, quiet_hours FROM volunteers
WHERE id = ANY($1::text[])
"""

# One roster row: match on id when given, else on the certificate number; never writes when the
# certificate number belongs to someone else (reported as a clash instead of failing).
# $1 id?, $2 id for a new volunteer, $3 name, $4 phone, $5 cert number, $6 issuer, $7 issued on,
# $8 expires on, $9 travel mode?, $10 status?, $11 quiet hours, $12 set quiet hours?,
# $13 home district, $14 set home district?
IMPORT_ROW = """
WITH target AS (
    SELECT id FROM volunteers
    WHERE id = coalesce($1::text, (SELECT id FROM volunteers WHERE cert_number = $5))
    FOR UPDATE
),
clash AS (
    SELECT id FROM volunteers
    WHERE cert_number = $5 AND id <> coalesce((SELECT id FROM target), $1, $2)
),
changed AS (
    UPDATE volunteers AS v SET name = $3, phone = $4, cert_number = $5, cert_issuer = $6,
        cert_issued_on = $7, cert_expires_on = $8,
        travel_mode = coalesce($9, v.travel_mode), status = coalesce($10, v.status),
        quiet_hours = CASE WHEN $12::boolean THEN $11 ELSE v.quiet_hours END,
        home_district = CASE WHEN $14::boolean THEN $13 ELSE v.home_district END,
        updated_at = now()
    FROM target
    WHERE v.id = target.id AND NOT EXISTS (SELECT 1 FROM clash)
      AND (v.name, v.phone, v.cert_number, v.cert_issuer, v.cert_issued_on, v.cert_expires_on,
           v.travel_mode, v.status, v.quiet_hours, v.home_district)
          IS DISTINCT FROM
          ($3, $4, $5, $6, $7::date, $8::date, coalesce($9, v.travel_mode),
           coalesce($10, v.status),
           CASE WHEN $12::boolean THEN $11 ELSE v.quiet_hours END,
           CASE WHEN $14::boolean THEN $13 ELSE v.home_district END)
    RETURNING v.id
),
created AS (
    INSERT INTO volunteers (id, name, phone, cert_number, cert_issuer, cert_issued_on,
        cert_expires_on, travel_mode, status, quiet_hours, home_district)
    SELECT coalesce($1, $2), $3, $4, $5, $6, $7, $8, coalesce($9, 'walk'),
        coalesce($10, 'active'), $11, $13
    WHERE NOT EXISTS (SELECT 1 FROM target) AND NOT EXISTS (SELECT 1 FROM clash)
    RETURNING id
)
SELECT (SELECT id FROM created) AS created_id,
       (SELECT id FROM changed) AS changed_id,
       (SELECT id FROM target) AS target_id,
       (SELECT id FROM clash LIMIT 1) AS clash_id
"""
