-- Fixed validity dates keep a reload of the same decisions byte-identical.
CREATE OR REPLACE TEMP TABLE _omop_stcm AS
SELECT c.source_code,
       0                                              AS source_concept_id,
       c.source_vocabulary_id,
       'rule=' || c.rule || '; ' || c.source_name     AS source_code_description,
       c.concept_id                                   AS target_concept_id,
       coalesce(k.vocabulary_id, 'None')              AS target_vocabulary_id,
       DATE '1970-01-01'                              AS valid_start_date,
       DATE '2099-12-31'                              AS valid_end_date,
       CAST(NULL AS VARCHAR)                          AS invalid_reason
FROM _trial_concept_choice c
LEFT JOIN {vocab}.concept k ON k.concept_id = c.concept_id AND c.concept_id <> 0;
