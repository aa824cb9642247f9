-- Bookkeeping of publishes: what each run published, and where each study version stands.
CREATE SCHEMA IF NOT EXISTS meta;

-- One row per study content the gate has decided on: published, or quarantined (until a retry).
-- A study version whose hash is here is not staged again; that is what makes runs incremental.
CREATE TABLE IF NOT EXISTS meta.study_state (
    nct_id        VARCHAR NOT NULL,
    content_hash  VARCHAR NOT NULL,
    status        VARCHAR NOT NULL CHECK (status IN ('published', 'quarantined', 'superseded')),
    run_id        VARCHAR,
    updated_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (nct_id, content_hash)
);

-- When the analysts' file was last swapped in (one row): what the work file recorded since, with no
-- publish of its own (a run killed after its gate held a record, a file that failed whole), is a change
-- the next run swaps in even when it publishes nothing (orchestration/quality/publish.py).
CREATE TABLE IF NOT EXISTS meta.snapshot_taken (
    taken_at TIMESTAMP NOT NULL
);

-- One row per successful publish.
CREATE TABLE IF NOT EXISTS meta.load_log (
    run_id             VARCHAR PRIMARY KEY,
    published_at       TIMESTAMP NOT NULL,
    studies_published  INTEGER NOT NULL,
    records_quarantined INTEGER NOT NULL,
    table_counts       JSON NOT NULL,   -- {"fhir.resource": n, "omop.care_site": n, ...} after the publish
    suites_passed      JSON NOT NULL    -- ["ctgov_registry", "fhir_staging", "omop_dqd", ...]
);

-- FHIR export parts (transforms/fhir/export.py) a publish changed. Written in the publish
-- transaction and cleared once the export and the analysts' snapshot are done, so a crash in between
-- leaves both to the next run instead of a stale export or file. (The snapshot itself is copied before
-- the clear, so the analysts' file lists its own publish's parts.)
CREATE TABLE IF NOT EXISTS meta.fhir_export_pending (
    resource_type VARCHAR NOT NULL,
    part          VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL
);

-- The studies whose resources those publishes replaced, so the export splices their lines into the
-- touched NCT id parts instead of rewriting each part from the table. A part a run pended without
-- recording its studies here (a warehouse written before this table) is rewritten whole. Cleared with
-- fhir_export_pending.
CREATE TABLE IF NOT EXISTS meta.fhir_export_pending_study (
    nct_id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL
);
