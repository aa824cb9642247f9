-- sites.csv rows of one delivery from the registered frame `incoming_roster`. Parameters: delivery_key, delivery_id.
INSERT INTO raw.site_roster_row
SELECT $1, $2, row_number, site_id, nct_id, facility, address, city, state, postal_code, country,
       latitude, longitude, status, activated_on, principal_investigator, target_enrollment
FROM incoming_roster;
