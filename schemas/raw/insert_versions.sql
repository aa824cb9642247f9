-- Append the versions of one batch that are not stored yet. Parameters: source_file, file_sha256,
-- ingested_at, run_id. `incoming_versions` is a DataFrame registered by the caller, one row per
-- (nct_id, content_hash): a study repeated in a file is reduced to its first in Python, on the keys
-- (transforms.ctgov.ingest._first_of_each), not here, where the payloads would go through a grouping.
INSERT INTO raw.ctgov_study_version
    (nct_id, content_hash, last_update_post_date, version_holder, payload,
     source_file, source_record, file_sha256, ingested_at, run_id)
SELECT i.nct_id, i.content_hash, i.last_update_post_date::DATE, i.version_holder::DATE, i.payload::JSON,
       $1, i.source_record, $2, $3, $4
FROM incoming_versions i
WHERE NOT EXISTS (
    SELECT 1 FROM raw.ctgov_study_version v
    WHERE v.nct_id = i.nct_id AND v.content_hash = i.content_hash
);
