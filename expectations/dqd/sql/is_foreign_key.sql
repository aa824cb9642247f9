-- isForeignKey: non-NULL values absent from the referenced table.
SELECT {key} AS example_key
FROM {schema}.{table} t
WHERE t.{field} IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM {ref_schema}.{fk_table} r WHERE r.{fk_field} = t.{field})
