CREATE OR REPLACE TEMP TABLE _pt_observation_period AS
SELECT m.id AS observation_period_id, p.id AS person_id,
       o.start_date AS observation_period_start_date, o.end_date AS observation_period_end_date,
       $crf AS period_type_concept_id
FROM _pt_op_src o
JOIN {meta}.omop_id_map m ON m.table_name = 'observation_period' AND m.natural_key = o.natural_key
JOIN {meta}.omop_id_map p ON p.table_name = 'person' AND p.natural_key = o.pseudonym;
