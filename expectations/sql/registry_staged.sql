-- The batch that passed: keys only, its payloads are read from raw by version_key. Re-created each run
-- (what a blocked gate left behind is superseded by this run's batch).
CREATE OR REPLACE TABLE stage.ctgov_study (
    version_key           BIGINT PRIMARY KEY,
    nct_id                VARCHAR NOT NULL UNIQUE,
    content_hash          VARCHAR NOT NULL,
    version_seq           BIGINT NOT NULL,
    last_update_post_date DATE,
    source_file           VARCHAR NOT NULL,
    source_record         VARCHAR NOT NULL
);
