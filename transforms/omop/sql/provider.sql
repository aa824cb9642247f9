CREATE OR REPLACE TEMP TABLE _omop_provider AS
SELECT p.id                    AS provider_id,
       t.name                  AS provider_name,
       CAST(NULL AS VARCHAR)   AS npi,
       CAST(NULL AS VARCHAR)   AS dea,
       CAST(NULL AS INTEGER)   AS specialty_concept_id,
       cs.id                   AS care_site_id,
       CAST(NULL AS INTEGER)   AS year_of_birth,
       CAST(NULL AS INTEGER)   AS gender_concept_id,
       t.name                  AS provider_source_value,
       t.role                  AS specialty_source_value,
       CAST(NULL AS INTEGER)   AS specialty_source_concept_id,
       CAST(NULL AS VARCHAR)   AS gender_source_value,
       CAST(NULL AS INTEGER)   AS gender_source_concept_id
FROM _trial_provider t
JOIN {meta}.omop_id_map p ON p.table_name = 'provider' AND p.natural_key = t.natural_key
LEFT JOIN {meta}.omop_id_map cs ON cs.table_name = 'care_site' AND cs.natural_key = t.site_key;
