-- Mark the loaded deliveries the new one replaces. A re-sent delivery id replaces its own earlier state,
-- whatever either's cut-off (it arrived later). Parameters: nct_id, site_id, content, cutoff_date, delivery_id,
-- new delivery_key, reason.
UPDATE raw.site_delivery
SET status = 'superseded', reason = $7
WHERE status = 'loaded' AND nct_id = $1 AND site_id = $2 AND content = $3 AND delivery_key <> $6
  AND (delivery_id = $5 OR cutoff_date < $4::DATE OR (cutoff_date = $4::DATE AND delivery_id < $5))
RETURNING delivery_id;
