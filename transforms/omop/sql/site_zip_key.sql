-- The batch's studies' zip-carrying site keys (see id_map_create.sql), replacing what earlier versions
-- of those studies recorded; a study whose new listing no longer needs them records none.
DELETE FROM {meta}.site_zip_key WHERE nct_id IN (SELECT nct_id FROM _trial_payload);
INSERT INTO {meta}.site_zip_key SELECT DISTINCT nct_id, site_key FROM _trial_site WHERE contains(site_key, '|zip:');
