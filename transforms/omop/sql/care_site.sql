CREATE OR REPLACE TEMP TABLE _omop_care_site AS
WITH site AS (  -- the first study listing the site names it, as in location.sql
    SELECT DISTINCT ON (site_key) site_key, facility
    FROM _trial_site
    ORDER BY site_key, nct_id, site_idx
)
SELECT c.id                    AS care_site_id,
       s.facility              AS care_site_name,
       CAST(NULL AS INTEGER)   AS place_of_service_concept_id,
       l.id                    AS location_id,
       s.facility              AS care_site_source_value,
       CAST(NULL AS VARCHAR)   AS place_of_service_source_value
FROM site s
JOIN {meta}.omop_id_map c ON c.table_name = 'care_site' AND c.natural_key = s.site_key
JOIN {meta}.omop_id_map l ON l.table_name = 'location'  AND l.natural_key = s.site_key;
