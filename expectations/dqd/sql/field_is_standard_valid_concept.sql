-- isStandardValidConcept: non-zero concept ids that are not standard and valid.
SELECT {key} AS example_key
FROM {schema}.{table} t
JOIN {vocab}.concept c ON c.concept_id = t.{field}
WHERE t.{field} <> 0 AND (c.standard_concept IS DISTINCT FROM 'S' OR c.invalid_reason IS NOT NULL)
