-- One row per (study, fact, discriminator); discriminators keep natural keys unique and stable.
CREATE OR REPLACE TEMP TABLE _trial_fact AS
WITH d AS (
    SELECT *,
        TRY_CAST(CASE WHEN length(start_date_raw) = 7 THEN start_date_raw || '-01'
                      WHEN length(start_date_raw) = 4 THEN start_date_raw || '-01-01' ELSE start_date_raw END AS DATE) AS start_date,
        TRY_CAST(CASE WHEN length(primary_completion_raw) = 7 THEN primary_completion_raw || '-01'
                      WHEN length(primary_completion_raw) = 4 THEN primary_completion_raw || '-01-01' ELSE primary_completion_raw END AS DATE) AS primary_completion_date,
        TRY_CAST(CASE WHEN length(completion_date_raw) = 7 THEN completion_date_raw || '-01'
                      WHEN length(completion_date_raw) = 4 THEN completion_date_raw || '-01-01' ELSE completion_date_raw END AS DATE) AS completion_date,
        TRY_CAST(last_update_raw AS DATE) AS last_update_date
    FROM _trial_study
),
fact AS (
    SELECT nct_id, 'nct_id' AS fact, '' AS discr, nct_id AS value_as_string, CAST(NULL AS DOUBLE) AS value_as_number,
           CAST(NULL AS INTEGER) AS value_as_concept_id, last_update_date AS metadata_date FROM d
    UNION ALL SELECT nct_id, 'brief_title', '', brief_title, NULL, NULL, NULL FROM d WHERE brief_title IS NOT NULL
    UNION ALL SELECT nct_id, 'official_title', '', official_title, NULL, NULL, NULL FROM d WHERE official_title IS NOT NULL
    UNION ALL SELECT nct_id, 'overall_status', '', overall_status, NULL, NULL, last_update_date FROM d WHERE overall_status IS NOT NULL
    UNION ALL SELECT nct_id, 'study_type', '', study_type, NULL, NULL, NULL FROM d WHERE study_type IS NOT NULL
    UNION ALL SELECT nct_id, 'enrollment_target', '', enrollment_type, enrollment_count, NULL, NULL FROM d WHERE enrollment_count IS NOT NULL
    UNION ALL SELECT nct_id, 'start_date', '', start_date_raw, NULL, NULL, start_date FROM d WHERE start_date_raw IS NOT NULL
    UNION ALL SELECT nct_id, 'primary_completion_date', '', primary_completion_raw, NULL, NULL, primary_completion_date FROM d WHERE primary_completion_raw IS NOT NULL
    UNION ALL SELECT nct_id, 'completion_date', '', completion_date_raw, NULL, NULL, completion_date FROM d WHERE completion_date_raw IS NOT NULL
    UNION ALL SELECT nct_id, 'last_update_post_date', '', last_update_raw, NULL, NULL, last_update_date FROM d WHERE last_update_raw IS NOT NULL
    UNION ALL SELECT nct_id, 'lead_sponsor', '', lead_sponsor, NULL, NULL, NULL FROM d WHERE lead_sponsor IS NOT NULL
    UNION ALL SELECT nct_id, 'phase', phase, phase, NULL, NULL, NULL FROM _trial_phase WHERE phase IS NOT NULL
    UNION ALL
    SELECT u.nct_id,
           CASE u.source_vocabulary_id WHEN 'CTGOV_CONDITION' THEN 'condition' WHEN 'CTGOV_INTERVENTION' THEN 'intervention'
                WHEN 'CTGOV_COND_MESH' THEN 'condition_mesh' ELSE 'intervention_mesh' END,
           u.norm_code,
           CASE WHEN u.source_vocabulary_id = 'CTGOV_INTERVENTION' THEN concat_ws(': ', u.detail, u.source_name)
                WHEN u.source_vocabulary_id IN ('CTGOV_COND_MESH', 'CTGOV_INTV_MESH') THEN u.detail || ' ' || u.source_name
                ELSE u.source_name END,
           NULL, coalesce(c.concept_id, 0), NULL
    FROM _trial_term_use u
    LEFT JOIN _trial_concept_choice c ON c.source_vocabulary_id = u.source_vocabulary_id AND c.norm_code = u.norm_code
    UNION ALL
    SELECT c.nct_id, 'arm_cohort', c.natural_key, c.label, CAST(m.id AS DOUBLE), NULL, NULL
    FROM _trial_cohort c
    JOIN {meta}.omop_id_map m ON m.table_name = 'cohort_definition' AND m.natural_key = c.natural_key
)
SELECT nct_id || '|' || fact || '|' || discr AS natural_key,
       nct_id, fact,
       min(value_as_string) AS value_as_string, min(value_as_number) AS value_as_number,
       min(value_as_concept_id) AS value_as_concept_id, min(metadata_date) AS metadata_date
FROM fact
GROUP BY ALL;
