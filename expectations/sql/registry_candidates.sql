-- The registry batch of one run: for every study, the candidate current versions (greatest
-- lastUpdatePostDate, then versionHolder) the gate has not decided on yet. Two different contents
-- tied for current is an ambiguity the gate quarantines rather than guesses.
CREATE SCHEMA IF NOT EXISTS stage;
CREATE OR REPLACE TABLE stage.ctgov_candidate AS
WITH ranked AS (
    SELECT h.*,
           rank() OVER (PARTITION BY nct_id
                        ORDER BY last_update_post_date DESC NULLS LAST, version_holder DESC NULLS LAST) AS tie_rank
    FROM raw.ctgov_study_history h
)
SELECT version_key, nct_id, content_hash, version_seq, last_update_post_date, version_holder,
       payload, source_file, source_record, ingested_at
FROM ranked r
WHERE tie_rank = 1
  AND NOT EXISTS (SELECT 1 FROM meta.study_state s WHERE s.nct_id = r.nct_id AND s.content_hash = r.content_hash);

CREATE TABLE IF NOT EXISTS stage.ctgov_study (
    version_key           BIGINT PRIMARY KEY,
    nct_id                VARCHAR NOT NULL UNIQUE,
    content_hash          VARCHAR NOT NULL,
    version_seq           BIGINT NOT NULL,
    last_update_post_date DATE,
    payload               JSON NOT NULL,
    source_file           VARCHAR NOT NULL,
    source_record         VARCHAR NOT NULL
);
DELETE FROM stage.ctgov_study;
