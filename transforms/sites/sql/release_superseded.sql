-- Holds that a newly loaded delivery makes moot, of the deliveries of the same study, site and content
-- it supersedes (the order of supersede_older.sql). Left held, `quarantine list` named them for good,
-- since no run decides a superseded delivery again.
--   site_contract, keyed '<delivery id>': a delivery held whole. An id is judged by its latest row alone:
--     one re-sent with a later cut-off and held keeps its hold, whatever an older row of it says.
--   site_protocol, keyed '<delivery id>/<USUBJID>': participants held from a loaded delivery. Moot once
--     no row of that id is loaded any more (its data left the current deliveries), or when this delivery
--     re-sends the id (the gate judges its participants again).
-- Parameters: nct_id, site_id, content, cutoff_date, delivery_id, new delivery_key, released_at.
UPDATE quarantine.record
SET released_at = $7
WHERE released_at IS NULL AND (
    (suite = 'site_contract' AND record_key IN (
        SELECT delivery_id FROM (
            SELECT delivery_id, delivery_key, status, nct_id, site_id, content, cutoff_date
            FROM raw.site_delivery
            QUALIFY row_number() OVER (PARTITION BY delivery_id ORDER BY delivery_key DESC) = 1)
        WHERE status IN ('superseded', 'held') AND nct_id = $1 AND site_id = $2 AND content = $3
          AND delivery_key <> $6
          AND (cutoff_date < $4::DATE OR (cutoff_date = $4::DATE AND delivery_id <= $5))))
    OR (suite = 'site_protocol' AND split_part(record_key, '/', 1) IN (
        SELECT delivery_id FROM raw.site_delivery WHERE nct_id = $1 AND site_id = $2 AND content = $3
        EXCEPT SELECT delivery_id FROM raw.site_delivery WHERE status = 'loaded'
        UNION SELECT $5)))
RETURNING record_key;
