-- plausibleStartBeforeEnd: start after end.
SELECT {key} AS example_key
FROM {schema}.{table} t
WHERE t.{field} IS NOT NULL AND t.{end_field} IS NOT NULL AND t.{field} > t.{end_field}
