-- One location per site_key, described by the first study that lists the site (by nct_id, then site_idx),
-- its empty fields too: a site's fields are never mixed from several studies, and a batch mapped in
-- chunks of NCT ids (where the first chunk listing a site keeps it) describes it as one batch does.
CREATE OR REPLACE TEMP TABLE _omop_location AS
WITH site AS (
    SELECT DISTINCT ON (site_key) site_key, city, state, zip, country, latitude, longitude
    FROM _trial_site
    ORDER BY site_key, nct_id, site_idx
),
us_state AS (
    SELECT lower(state_name) AS lname, state_code FROM read_csv($us_states, header = true, all_varchar = true)
),
country_concept AS (
    SELECT lower(concept_name) AS lname, min(concept_id) AS concept_id
    FROM {vocab}.concept
    WHERE domain_id = 'Geography' AND standard_concept = 'S' AND invalid_reason IS NULL
    GROUP BY 1
)
SELECT m.id                                              AS location_id,
       CAST(NULL AS VARCHAR)                             AS address_1,
       CAST(NULL AS VARCHAR)                             AS address_2,
       s.city,
       CASE WHEN s.country = 'United States'
            THEN coalesce(us.state_code, CASE WHEN length(s.state) = 2 THEN upper(s.state) END)
       END                                               AS state,
       -- zip is varchar(9): a US ZIP+4 as its 9 digits (the CDM's form; cut to 9 characters,
       -- "57117-5134" became "57117-513"); a postal code still longer is left out, not cut (it stays
       -- whole in the registry record, and in location_source_value as far as 50 characters go).
       CASE WHEN s.country = 'United States' AND regexp_full_match(s.zip, '[0-9]{{5}}-[0-9]{{4}}')
            THEN replace(s.zip, '-', '')
            WHEN length(s.zip) <= 9 THEN s.zip
       END                                               AS zip,
       CAST(NULL AS VARCHAR)                             AS county,
       concat_ws(', ', s.city, s.state, s.zip, s.country) AS location_source_value,
       coalesce(cc.concept_id, 0)                        AS country_concept_id,
       s.country                                         AS country_source_value,
       s.latitude,
       s.longitude
FROM site s
JOIN {meta}.omop_id_map m ON m.table_name = 'location' AND m.natural_key = s.site_key
LEFT JOIN us_state us ON us.lname = lower(s.state)
LEFT JOIN country_concept cc ON cc.lname = lower(s.country);
