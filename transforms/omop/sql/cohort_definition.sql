CREATE OR REPLACE TEMP TABLE _omop_cohort_definition AS
SELECT m.id                                  AS cohort_definition_id,
       c.nct_id || ': ' || c.label           AS cohort_definition_name,
       c.description                         AS cohort_definition_description,
       0                                     AS definition_type_concept_id,
       concat_ws(E'\n',
           'Eligibility of ' || c.nct_id,
           'Sex: ' || s.eligibility_sex,
           'Minimum age: ' || s.minimum_age,
           'Maximum age: ' || s.maximum_age,
           'Healthy volunteers: ' || s.healthy_volunteers,
           s.eligibility_criteria)           AS cohort_definition_syntax,
       0                                     AS subject_concept_id,
       TRY_CAST(CASE WHEN length(s.start_date_raw) = 7 THEN s.start_date_raw || '-01'
                     WHEN length(s.start_date_raw) = 4 THEN s.start_date_raw || '-01-01'
                     ELSE s.start_date_raw END AS DATE) AS cohort_initiation_date
FROM _trial_cohort c
JOIN _trial_study s USING (nct_id)
JOIN {meta}.omop_id_map m ON m.table_name = 'cohort_definition' AND m.natural_key = c.natural_key;
