-- Each named delivery folder's latest evaluated state. Parameter: the folders (landing-relative).
SELECT folder, state_sha256
FROM raw.site_delivery
WHERE folder IN (SELECT unnest(?::VARCHAR[]))
QUALIFY row_number() OVER (PARTITION BY folder ORDER BY delivery_key DESC) = 1
