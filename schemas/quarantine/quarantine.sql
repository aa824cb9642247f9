-- Records held back from the published warehouse, each with a machine-readable reason.
-- Every landed record is either published or here: nothing is dropped silently.
CREATE SCHEMA IF NOT EXISTS quarantine;

CREATE TABLE IF NOT EXISTS quarantine.record (
    run_id          VARCHAR,
    quarantined_at  TIMESTAMP NOT NULL,
    source_file     VARCHAR NOT NULL,        -- landing-relative path of the file
    record_key      VARCHAR NOT NULL,        -- nct id, or position in the file when there is none
    source_record   VARCHAR NOT NULL,        -- '' / 'studies[3]' / zip member name
    suite           VARCHAR NOT NULL,        -- e.g. raw_ingest, ctgov_raw, fhir_staging, omop_staging
    rule            VARCHAR NOT NULL,        -- machine-readable rule id
    field           VARCHAR,                 -- JSON path or table.column of the offending field
    reason          VARCHAR NOT NULL,        -- readable: names the file, the record and the field
    payload         VARCHAR,                 -- the record as received (text: it may not even be JSON)
    released_at     TIMESTAMP                -- no longer held: released by `quarantine retry`, or a newer version was published
);

-- What each gate rule found in each run: the blocking asset checks read it, the UI shows it.
CREATE TABLE IF NOT EXISTS quarantine.rule_result (
    run_id     VARCHAR NOT NULL,
    suite      VARCHAR NOT NULL,
    rule       VARCHAR NOT NULL,
    level      VARCHAR NOT NULL,          -- record | batch | warning
    field      VARCHAR,
    evaluated  BIGINT NOT NULL,
    failed     BIGINT NOT NULL,
    examples   JSON,                      -- up to 5 readable reasons
    docs_path  VARCHAR,                   -- great-expectations Data Docs of the run
    PRIMARY KEY (run_id, suite, rule)
);

-- Every OMOP value a run cut to its column's varchar length (the CDM declares them, DuckDB does not
-- enforce them, the mapping cuts for engines that do). The whole value stays in raw; the run's
-- rule_result has a warning `value_cut.<table>.<column>` counting these rows.
CREATE TABLE IF NOT EXISTS quarantine.value_cut (
    run_id       VARCHAR NOT NULL,
    table_name   VARCHAR NOT NULL,
    column_name  VARCHAR NOT NULL,
    row_key      VARCHAR NOT NULL,        -- the row's primary key, or 'md5:<hash of the value>' in a table without one
    spec_length  INTEGER NOT NULL,
    length       BIGINT NOT NULL,         -- of the whole value
    head         VARCHAR NOT NULL         -- its first 60 characters
);
