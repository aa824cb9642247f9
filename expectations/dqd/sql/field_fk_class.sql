-- fkClass: non-zero concept ids outside the expected concept class.
SELECT {key} AS example_key
FROM {schema}.{table} t
JOIN {vocab}.concept c ON c.concept_id = t.{field}
WHERE t.{field} <> 0 AND c.concept_class_id <> $expected
