-- Distinct source terms of the extract with the domains a match may come from.
CREATE OR REPLACE TEMP TABLE _trial_term AS
WITH raw_term AS (
    SELECT 'CTGOV_CONDITION' AS source_vocabulary_id, c.nct_id, c.term AS source_name,
           ['Condition'] AS domain_ids,
           (SELECT min(m.mesh_id) FROM _trial_mesh m
             WHERE m.nct_id = c.nct_id AND m.kind = 'condition'
               AND trim(regexp_replace(lower(strip_accents(m.term)), '[^a-z0-9]+', ' ', 'g'))
                 = trim(regexp_replace(lower(strip_accents(c.term)), '[^a-z0-9]+', ' ', 'g'))) AS mesh_id
    FROM _trial_condition c
    UNION ALL
    SELECT 'CTGOV_INTERVENTION', i.nct_id, i.term,
           CASE WHEN i.intervention_type IN ('DRUG', 'BIOLOGICAL', 'DIETARY_SUPPLEMENT') THEN ['Drug']
                WHEN i.intervention_type = 'DEVICE' THEN ['Device']
                WHEN i.intervention_type IN ('PROCEDURE', 'RADIATION') THEN ['Procedure']
                WHEN i.intervention_type = 'DIAGNOSTIC_TEST' THEN ['Measurement', 'Procedure']
                ELSE CAST([] AS VARCHAR[]) END,
           (SELECT min(m.mesh_id) FROM _trial_mesh m
             WHERE m.nct_id = i.nct_id AND m.kind = 'intervention'
               AND trim(regexp_replace(lower(strip_accents(m.term)), '[^a-z0-9]+', ' ', 'g'))
                 = trim(regexp_replace(lower(strip_accents(i.term)), '[^a-z0-9]+', ' ', 'g')))
    FROM _trial_intervention i
    UNION ALL
    SELECT CASE WHEN kind = 'condition' THEN 'CTGOV_COND_MESH' ELSE 'CTGOV_INTV_MESH' END,
           nct_id, term,
           CASE WHEN kind = 'condition' THEN ['Condition'] ELSE ['Drug', 'Device', 'Procedure'] END,
           mesh_id
    FROM _trial_mesh
    WHERE mesh_id IS NOT NULL
),
normed AS (
    SELECT *,
           CASE WHEN source_vocabulary_id IN ('CTGOV_COND_MESH', 'CTGOV_INTV_MESH') THEN mesh_id
                ELSE trim(regexp_replace(lower(strip_accents(source_name)), '[^a-z0-9]+', ' ', 'g')) END AS norm_code
    FROM raw_term
)
SELECT source_vocabulary_id,
       CASE WHEN length(norm_code) <= 50 THEN norm_code
            ELSE left(norm_code, 41) || '~' || left(md5(norm_code), 8) END AS source_code,
       norm_code,
       min(source_name)                         AS source_name,
       list_distinct(flatten(list(domain_ids))) AS domain_ids,
       min(mesh_id)                             AS mesh_id
FROM normed
WHERE norm_code IS NOT NULL AND norm_code <> ''
GROUP BY source_vocabulary_id, norm_code;

-- Which source term each extract row uses, for the metadata rows of its study.
CREATE OR REPLACE TEMP TABLE _trial_term_use AS
SELECT 'CTGOV_CONDITION' AS source_vocabulary_id, nct_id, idx, term AS source_name,
       trim(regexp_replace(lower(strip_accents(term)), '[^a-z0-9]+', ' ', 'g')) AS norm_code,
       CAST(NULL AS VARCHAR) AS detail
FROM _trial_condition
UNION ALL
SELECT 'CTGOV_INTERVENTION', nct_id, idx, term,
       trim(regexp_replace(lower(strip_accents(term)), '[^a-z0-9]+', ' ', 'g')), intervention_type
FROM _trial_intervention
UNION ALL
SELECT CASE WHEN kind = 'condition' THEN 'CTGOV_COND_MESH' ELSE 'CTGOV_INTV_MESH' END,
       nct_id, row_number() OVER (PARTITION BY nct_id, kind ORDER BY mesh_id) - 1, term, mesh_id, mesh_id
FROM _trial_mesh
WHERE mesh_id IS NOT NULL;
