-- The registry batch of one run: for every study, the candidate current versions (greatest
-- lastUpdatePostDate, then versionHolder, among the versions not held in quarantine) the gate has not
-- decided on yet. Two different contents tied for current is an ambiguity the gate quarantines rather
-- than guesses. A held version does not rank: one whose lastUpdatePostDate lay in the future (held by
-- the registry suite) otherwise stayed current, and every later version of its study went unseen.
CREATE SCHEMA IF NOT EXISTS stage;
-- Narrow columns only: the payloads stay in raw and are read per chunk by version_key (sorting or
-- copying the batch's payloads here ran out of memory under a 1 GB cap at 100,000 studies, and the
-- copy left a batch's worth of free blocks in the work file that every publish then copied).
-- version_seq as in raw.ctgov_study_history.
CREATE OR REPLACE TABLE stage.ctgov_candidate AS
-- Only studies with a version the gate has not decided on can have a candidate, so only their versions
-- are ranked (all of each one's versions: the ranks are per study). Ranking every stored version made
-- a one-study update cost 0.31-0.41 s at 600,000 studies; this anti-join alone takes 66-76 ms there.
WITH pending AS (
    SELECT DISTINCT v.nct_id
    FROM raw.ctgov_study_version v
    WHERE NOT EXISTS (SELECT 1 FROM meta.study_state s WHERE s.nct_id = v.nct_id AND s.content_hash = v.content_hash)
), placed AS (
    -- Two contents tied on both dates that arrived in different runs are not ambiguous: the later run's
    -- is current, as it is when the earlier one was already published. A file corrected in place keeps
    -- its dates, and `quarantine retry` released its held content into the correction's run: both were
    -- held as ambiguous, run after run. Tied contents of one run (one zip, one landing batch) still are.
    SELECT v.version_key, v.nct_id, v.content_hash, v.last_update_post_date, v.version_holder,
           min(v.ingested_at) OVER (PARTITION BY v.run_id) AS run_started
    FROM raw.ctgov_study_version v
    WHERE v.nct_id IN (SELECT nct_id FROM pending)
), ranked AS (
    SELECT v.version_key, v.nct_id, v.content_hash,
           rank() OVER (PARTITION BY v.nct_id
                        ORDER BY h.nct_id IS NOT NULL, v.last_update_post_date DESC NULLS LAST,
                                 v.version_holder DESC NULLS LAST, v.run_started DESC) AS tie_rank,
           row_number() OVER (PARTITION BY v.nct_id
                              ORDER BY v.last_update_post_date NULLS FIRST, v.version_holder NULLS FIRST, v.version_key) AS version_seq
    FROM placed v
    LEFT JOIN meta.study_state h ON h.nct_id = v.nct_id AND h.content_hash = v.content_hash AND h.status = 'quarantined'
), picked AS (
    SELECT r.version_key, r.version_seq
    FROM ranked r
    WHERE tie_rank = 1
      AND NOT EXISTS (SELECT 1 FROM meta.study_state s WHERE s.nct_id = r.nct_id AND s.content_hash = r.content_hash)
)
SELECT v.version_key, v.nct_id, v.content_hash, p.version_seq, v.last_update_post_date, v.version_holder,
       v.source_file, v.source_record, v.ingested_at
FROM raw.ctgov_study_version v
JOIN picked p USING (version_key)
-- In NCT id order: staging goes chunk by chunk through runs of sorted ids, in an order that does not
-- depend on how version keys were handed out.
ORDER BY v.nct_id, v.version_key;
