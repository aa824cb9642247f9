-- Append the versions of one batch that are not stored yet. A study may appear twice in one batch
-- (a page and a zip member of the same content): keep the first. Parameters: source_file,
-- file_sha256, ingested_at, run_id. `incoming_versions` is a DataFrame registered by the caller.
INSERT INTO raw.ctgov_study_version
    (nct_id, content_hash, last_update_post_date, version_holder, payload,
     source_file, source_record, file_sha256, ingested_at, run_id)
SELECT i.nct_id, i.content_hash, i.last_update_post_date::DATE, i.version_holder::DATE, i.payload::JSON,
       $1, i.source_record, $2, $3, $4
FROM incoming_versions i
WHERE NOT EXISTS (
    SELECT 1 FROM raw.ctgov_study_version v
    WHERE v.nct_id = i.nct_id AND v.content_hash = i.content_hash
)
QUALIFY row_number() OVER (PARTITION BY i.nct_id, i.content_hash ORDER BY i.source_record) = 1;
