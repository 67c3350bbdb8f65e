-- The foundation: dispatch centers, the AED inventory, the volunteer registry.
-- Every location is stored in WGS-84 (lat, lng); ids are opaque, time-sortable strings.

CREATE TABLE dispatch_centers (
    id              text PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    callback_url    text,
    api_key_hash    bytea NOT NULL UNIQUE,
    -- The webhook secret signs callbacks, so it is kept (not hashed); it is never shown again.
    webhook_secret  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE aeds (
    id                 text PRIMARY KEY,
    name               text NOT NULL,
    address            text,
    district           text,
    lat                double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng                double precision NOT NULL CHECK (lng BETWEEN -180 AND 180),
    venue_type         text NOT NULL DEFAULT 'other' CHECK (venue_type IN
        ('factory', 'office', 'mall', 'transit', 'school', 'hospital', 'hotel', 'government',
         'sports', 'residential', 'public', 'other')),
    indoor             boolean,
    level              integer,
    access_note        text,
    opening_hours      text NOT NULL DEFAULT '24/7',
    status             text NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'maintenance', 'missing', 'retired')),
    model              text,
    serial_no          text,
    pads_expire_on     date,
    battery_expire_on  date,
    last_inspected_on  date,
    owner_name         text,
    owner_phone        text,
    osm_id             text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
-- The import's natural keys: an upsert matches on id, else serial_no, else the OSM id.
CREATE UNIQUE INDEX aeds_serial_no_key ON aeds (serial_no) WHERE serial_no IS NOT NULL;
CREATE UNIQUE INDEX aeds_osm_id_key ON aeds (osm_id) WHERE osm_id IS NOT NULL;
CREATE INDEX aeds_status_idx ON aeds (status);
CREATE INDEX aeds_district_idx ON aeds (district);

CREATE TABLE volunteers (
    id               text PRIMARY KEY,
    name             text NOT NULL,
    phone            text NOT NULL,
    cert_number      text NOT NULL UNIQUE,
    cert_issuer      text NOT NULL,
    cert_issued_on   date NOT NULL,
    cert_expires_on  date NOT NULL,
    travel_mode      text NOT NULL DEFAULT 'walk' CHECK (travel_mode IN ('walk', 'bike', 'car')),
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    quiet_hours      text,
    home_district    text,
    token_hash       bytea UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (cert_expires_on >= cert_issued_on)
);
CREATE INDEX volunteers_home_district_idx ON volunteers (home_district);
CREATE INDEX volunteers_cert_expires_idx ON volunteers (cert_expires_on);
