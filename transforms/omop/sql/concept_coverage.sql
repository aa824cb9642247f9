WITH per_rule AS (
    SELECT source_vocabulary_id,
           regexp_extract(source_code_description, '^rule=([a-z_]+);', 1) AS rule,
           count(*) AS terms,
           bool_and(target_concept_id <> 0) AS mapped
    FROM {schema}.source_to_concept_map
    WHERE list_contains($vocabs, source_vocabulary_id)
    GROUP BY 1, 2
)
SELECT source_vocabulary_id, rule, terms,
       round(100.0 * terms / sum(terms) OVER (PARTITION BY source_vocabulary_id), 1) AS pct_of_vocabulary,
       mapped
FROM per_rule
ORDER BY source_vocabulary_id, rule;
