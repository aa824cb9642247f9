-- Site deliveries (schemas/sites/CONTRACT.md) in the raw layer: append-only, one row per evaluated
-- state of a delivery folder (manifest sha + the sha of every listed file as found). A folder is
-- evaluated again whenever its state differs from its latest row: one held while still being copied
-- once it changes, one restored to an earlier state (a row for that state again, the latest).
-- The only in-place update: a loaded delivery's status becomes 'superseded' when a newer one of the
-- same study, site and content arrives.
CREATE SCHEMA IF NOT EXISTS raw;

CREATE SEQUENCE IF NOT EXISTS raw.site_delivery_seq;

CREATE TABLE IF NOT EXISTS raw.site_delivery (
    delivery_key     BIGINT PRIMARY KEY DEFAULT nextval('raw.site_delivery_seq'),
    delivery_id      VARCHAR NOT NULL,   -- manifest delivery_id (the folder name when the manifest is unreadable)
    nct_id           VARCHAR,            -- NULL only when the manifest is unreadable
    site_id          VARCHAR,
    cutoff_date      DATE,
    content          VARCHAR,            -- participant_data (any SDTM file) | roster (sites.csv only)
    manifest         JSON,               -- manifest.json as received (NULL when it is not JSON)
    folder           VARCHAR NOT NULL,   -- landing-relative, e.g. sites/NCT06668571-001-20260630
    manifest_sha256  VARCHAR NOT NULL,
    state_sha256     VARCHAR NOT NULL,   -- folder + manifest sha + listed files' actual shas
    files            JSON NOT NULL,      -- {name: sha256 found, or null when missing}
    status           VARCHAR NOT NULL CHECK (status IN ('loaded', 'held', 'superseded')),
    reason           VARCHAR,            -- readable: names the delivery, file, row and column
    rows_loaded      JSON,               -- {kind: rows} for loaded and superseded deliveries
    first_seen       TIMESTAMP NOT NULL,
    run_id           VARCHAR
);

-- sites.csv rows exactly as received (all text); row_number counts data rows from 1.
CREATE TABLE IF NOT EXISTS raw.site_roster_row (
    delivery_key           BIGINT NOT NULL,
    delivery_id            VARCHAR NOT NULL,
    row_number             INTEGER NOT NULL,
    site_id                VARCHAR,
    nct_id                 VARCHAR,
    facility               VARCHAR,
    address                VARCHAR,
    city                   VARCHAR,
    state                  VARCHAR,
    postal_code            VARCHAR,
    country                VARCHAR,
    latitude               VARCHAR,
    longitude              VARCHAR,
    status                 VARCHAR,
    activated_on           VARCHAR,
    principal_investigator VARCHAR,
    target_enrollment      VARCHAR,
    PRIMARY KEY (delivery_key, row_number)
);

-- SDTM rows as received: the record keeps every column (SDTM allows extra variables) as text,
-- empty cells included as "". usubjid is lifted out because every later step joins on it.
CREATE TABLE IF NOT EXISTS raw.sdtm_row (
    delivery_key  BIGINT NOT NULL,
    delivery_id   VARCHAR NOT NULL,
    domain        VARCHAR NOT NULL,      -- DM, DS, SV, EX, VS, QS, AE
    row_number    INTEGER NOT NULL,
    usubjid       VARCHAR NOT NULL,
    record        JSON NOT NULL,
    PRIMARY KEY (delivery_key, domain, row_number)
);

-- The latest loaded delivery per study, site and content: later cut-off, then later delivery id,
-- then later arrival. A roster-only update does not hide a site's participant data.
CREATE OR REPLACE VIEW raw.site_delivery_current AS
SELECT * FROM raw.site_delivery
WHERE status = 'loaded'
QUALIFY row_number() OVER (PARTITION BY nct_id, site_id, content
                           ORDER BY cutoff_date DESC, delivery_id DESC, delivery_key DESC) = 1;

-- The current roster of each site: from the latest loaded delivery that carried sites.csv.
CREATE OR REPLACE VIEW raw.site_roster_current AS
SELECT r.*, d.nct_id AS delivery_nct_id, d.cutoff_date
FROM raw.site_roster_row r
JOIN raw.site_delivery d USING (delivery_key)
WHERE d.status = 'loaded'
QUALIFY dense_rank() OVER (PARTITION BY d.nct_id, d.site_id
                           ORDER BY d.cutoff_date DESC, d.delivery_id DESC, d.delivery_key DESC) = 1;

-- The current participant data: SDTM rows of each site's current participant-data delivery.
CREATE OR REPLACE VIEW raw.sdtm_row_current AS
SELECT s.*, c.nct_id, c.site_id, c.cutoff_date
FROM raw.sdtm_row s
JOIN raw.site_delivery_current c USING (delivery_key)
WHERE c.content = 'participant_data';
