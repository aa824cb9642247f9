-- One location per site_key; the representative values are the first non-null by (nct_id, site_idx).
CREATE OR REPLACE TEMP TABLE _omop_location AS
WITH site AS (
    SELECT site_key,
           min_by(city, nct_id || lpad(CAST(site_idx AS VARCHAR), 6, '0')) FILTER (WHERE city IS NOT NULL)        AS city,
           min_by(state, nct_id || lpad(CAST(site_idx AS VARCHAR), 6, '0')) FILTER (WHERE state IS NOT NULL)      AS state,
           min_by(zip, nct_id || lpad(CAST(site_idx AS VARCHAR), 6, '0')) FILTER (WHERE zip IS NOT NULL)          AS zip,
           min_by(country, nct_id || lpad(CAST(site_idx AS VARCHAR), 6, '0')) FILTER (WHERE country IS NOT NULL)  AS country,
           min_by(latitude, nct_id || lpad(CAST(site_idx AS VARCHAR), 6, '0')) FILTER (WHERE latitude IS NOT NULL)  AS latitude,
           min_by(longitude, nct_id || lpad(CAST(site_idx AS VARCHAR), 6, '0')) FILTER (WHERE longitude IS NOT NULL) AS longitude
    FROM _trial_site
    GROUP BY site_key
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
       s.zip,
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
