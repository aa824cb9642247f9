CREATE OR REPLACE TEMP TABLE _omop_metadata AS
SELECT m.id                                  AS metadata_id,
       0                                     AS metadata_concept_id,
       coalesce((SELECT concept_id FROM {vocab}.concept WHERE concept_id = $type_concept_id), 0) AS metadata_type_concept_id,
       f.nct_id || ':' || f.fact             AS name,
       f.value_as_string,
       f.value_as_concept_id,
       f.value_as_number,
       f.metadata_date,
       CAST(NULL AS TIMESTAMP)               AS metadata_datetime
FROM _trial_fact f
JOIN {meta}.omop_id_map m ON m.table_name = 'metadata' AND m.natural_key = f.natural_key;
