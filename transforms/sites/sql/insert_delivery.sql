-- One evaluated state of a delivery folder. Parameters in column order; returns the new key.
INSERT INTO raw.site_delivery
    (delivery_id, nct_id, site_id, cutoff_date, content, manifest, folder, manifest_sha256,
     state_sha256, files, status, reason, rows_loaded, first_seen, run_id)
VALUES (?, ?, ?, ?::DATE, ?, ?::JSON, ?, ?, ?, ?::JSON, ?, ?, ?::JSON, ?, ?)
RETURNING delivery_key;
