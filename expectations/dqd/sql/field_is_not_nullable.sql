-- isRequired: rows with NULL in a required field.
SELECT {key} AS example_key FROM {schema}.{table} t WHERE t.{field} IS NULL
