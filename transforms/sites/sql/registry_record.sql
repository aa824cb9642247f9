-- The registry record each delivered study's site data is checked against: the version this run
-- stages, else the published one. Not the newest landed (raw.ctgov_study_current): that may be a
-- version held in quarantine, one nobody has published.
-- The NCT ids come in as a list parameter (the same one three times), so every read is filtered by
-- it: a subquery made DuckDB rank every stored version (3.1 s at 100,000 studies).
WITH gated AS (
    SELECT nct_id, content_hash, 0 AS pick FROM stage.ctgov_study WHERE nct_id = ANY(?::VARCHAR[])
    UNION ALL
    SELECT nct_id, content_hash, 1 FROM meta.study_state WHERE status = 'published' AND nct_id = ANY(?::VARCHAR[])
), chosen AS (
    SELECT nct_id, content_hash FROM gated QUALIFY row_number() OVER (PARTITION BY nct_id ORDER BY pick) = 1
)
SELECT v.nct_id, v.content_hash, v.payload
FROM raw.ctgov_study_version v
JOIN chosen c ON c.nct_id = v.nct_id AND c.content_hash = v.content_hash
WHERE v.nct_id = ANY(?::VARCHAR[])
ORDER BY v.nct_id;
