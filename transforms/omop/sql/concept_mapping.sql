-- Rule cascade of concept_mapping.py: one decision per source term.
CREATE OR REPLACE TEMP TABLE _trial_concept_choice AS
WITH std AS (
    SELECT concept_id, lower(concept_name) AS lname, domain_id, vocabulary_id
    FROM {vocab}.concept
    WHERE standard_concept = 'S' AND invalid_reason IS NULL
),
curated AS (
    SELECT source_vocabulary_id, source_code AS norm_code, CAST(target_concept_id AS INTEGER) AS target_concept_id
    FROM read_csv($curated, header = true, all_varchar = true)
),
candidate AS (
    SELECT t.source_vocabulary_id, t.norm_code, s.concept_id, 'mesh_maps_to' AS rule, 1 AS priority
    FROM _trial_term t
    JOIN {vocab}.concept m ON m.vocabulary_id = 'MeSH' AND m.concept_code = t.mesh_id
    JOIN {vocab}.concept_relationship r
      ON r.concept_id_1 = m.concept_id AND r.relationship_id = 'Maps to' AND r.invalid_reason IS NULL
    JOIN std s ON s.concept_id = r.concept_id_2
    UNION ALL
    SELECT t.source_vocabulary_id, t.norm_code, s.concept_id, 'name_exact', 2
    FROM _trial_term t
    JOIN std s ON s.lname = lower(t.source_name) AND list_contains(t.domain_ids, s.domain_id)
    UNION ALL
    SELECT t.source_vocabulary_id, t.norm_code, s.concept_id, 'synonym_exact', 3
    FROM _trial_term t
    JOIN {vocab}.concept_synonym cs ON lower(cs.concept_synonym_name) = lower(t.source_name)
    JOIN std s ON s.concept_id = cs.concept_id AND list_contains(t.domain_ids, s.domain_id)
    UNION ALL
    SELECT t.source_vocabulary_id, t.norm_code, s.concept_id, 'curated', 4
    FROM _trial_term t
    JOIN curated c ON c.source_vocabulary_id = t.source_vocabulary_id AND c.norm_code = t.norm_code
    JOIN std s ON s.concept_id = c.target_concept_id
),
best AS (
    SELECT source_vocabulary_id, norm_code,
           arg_min(concept_id, (priority, concept_id)) AS concept_id,
           arg_min(rule, (priority, concept_id))       AS rule
    FROM candidate
    GROUP BY ALL
)
SELECT t.source_vocabulary_id, t.source_code, t.norm_code, t.source_name,
       coalesce(b.concept_id, 0)      AS concept_id,
       coalesce(b.rule, 'unmapped')   AS rule
FROM _trial_term t
LEFT JOIN best b ON b.source_vocabulary_id = t.source_vocabulary_id AND b.norm_code = t.norm_code;
