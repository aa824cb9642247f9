-- Raw layer: append-only, one row per landed file and one row per distinct study version.
-- Nothing here is ever updated in place except landed_file.status/error of a file in flight.
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS meta;

CREATE TABLE IF NOT EXISTS raw.landed_file (
    sha256        VARCHAR PRIMARY KEY,      -- content hash: a file is processed once per content
    path          VARCHAR NOT NULL,         -- path relative to the landing folder, as first seen
    size_bytes    BIGINT NOT NULL,
    kind          VARCHAR NOT NULL,         -- ctgov_study | ctgov_page | ctgov_study_list | ctgov_zip | unknown
    first_seen    TIMESTAMP NOT NULL,
    status        VARCHAR NOT NULL CHECK (status IN ('loaded', 'failed')),
    error         VARCHAR,                  -- readable error naming file, record and field
    records_seen  INTEGER NOT NULL DEFAULT 0,
    records_failed INTEGER NOT NULL DEFAULT 0,
    new_versions  INTEGER NOT NULL DEFAULT 0,
    run_id        VARCHAR
);

CREATE SEQUENCE IF NOT EXISTS raw.ctgov_study_version_seq;

-- No PRIMARY KEY or UNIQUE here, on purpose: DuckDB rewrites the last row group of an indexed table
-- at every checkpoint after an append, and this table's row groups hold ~2 GB of payload (122,880
-- studies): one changed study cost 4.5 s per checkpoint at 100,000 studies, 0.04 s without indexes.
-- version_key is unique by its sequence; (nct_id, content_hash) is unique because
-- raw/insert_versions.sql appends only contents not stored yet (the one writer is the pipeline),
-- and tests/schemas/test_raw_contract.py holds both.
CREATE TABLE IF NOT EXISTS raw.ctgov_study_version (
    version_key           BIGINT NOT NULL DEFAULT nextval('raw.ctgov_study_version_seq'),
    nct_id                VARCHAR NOT NULL,  -- from protocolSection.identificationModule.nctId, never the file name
    content_hash          VARCHAR NOT NULL,  -- sha256 of canonical JSON without volatile fields
    last_update_post_date DATE,              -- statusModule.lastUpdatePostDateStruct.date (NULL in field-projected pages)
    version_holder        DATE,              -- derivedSection.miscInfoModule.versionHolder (tie-breaker only)
    payload               JSON NOT NULL,     -- the record exactly as received (re-serialised JSON)
    source_file           VARCHAR NOT NULL,  -- landing-relative path of the file it came from
    source_record         VARCHAR NOT NULL,  -- where in the file: '' (single study), 'studies[3]', or the zip member
    file_sha256           VARCHAR NOT NULL,
    ingested_at           TIMESTAMP NOT NULL,
    run_id                VARCHAR
);

-- Every path seen in the landing folder, with the stat that lets a rescan skip re-hashing an
-- unchanged 10 GB zip. Several paths may carry the same content (sha256). seen_at: when the path was
-- first seen with this size, mtime and ctime (a rescan does not write an unchanged, processed file again).
-- ctime: a file rewritten in place with its size and mtime kept (`cp -p`, `rsync -t`, a coarse-mtime
-- mount) has a new ctime, which nothing can set back; NULL in warehouses from before it was kept (such
-- a path is hashed once more).
CREATE TABLE IF NOT EXISTS raw.landing_path (
    path        VARCHAR PRIMARY KEY,
    size_bytes  BIGINT NOT NULL,
    mtime_ns    BIGINT NOT NULL,
    sha256      VARCHAR NOT NULL,
    seen_at     TIMESTAMP NOT NULL,
    ctime_ns    BIGINT
);
ALTER TABLE raw.landing_path ADD COLUMN IF NOT EXISTS ctime_ns BIGINT;

-- The current version of each study: greatest lastUpdatePostDate, then versionHolder, then arrival.
-- version_seq numbers a study's versions in that same order (1 = oldest), so it is stable under any arrival order.
CREATE OR REPLACE VIEW raw.ctgov_study_history AS
SELECT v.*,
       row_number() OVER (PARTITION BY nct_id
                          ORDER BY last_update_post_date NULLS FIRST, version_holder NULLS FIRST, version_key) AS version_seq,
       count(*) OVER (PARTITION BY nct_id) AS version_count
FROM raw.ctgov_study_version v;

CREATE OR REPLACE VIEW raw.ctgov_study_current AS
SELECT * FROM raw.ctgov_study_history WHERE version_seq = version_count;
