-- A loaded delivery of the same study, site and content that is newer than the candidate
-- (later cut-off, then later delivery id). Not the same delivery id: a re-send replaces its own earlier
-- state whatever its cut-off (it was "superseded on arrival by" itself). Parameters: nct_id, site_id,
-- content, cutoff_date, delivery_id.
SELECT delivery_id, cutoff_date
FROM raw.site_delivery
WHERE status = 'loaded' AND nct_id = $1 AND site_id = $2 AND content = $3 AND delivery_id <> $5
  AND (cutoff_date > $4::DATE OR (cutoff_date = $4::DATE AND delivery_id > $5))
ORDER BY cutoff_date DESC, delivery_id DESC
LIMIT 1;
