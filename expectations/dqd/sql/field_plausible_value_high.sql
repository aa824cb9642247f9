-- plausibleValueHigh: values above the plausible maximum.
SELECT {key} AS example_key FROM {schema}.{table} t WHERE t.{field} > $bound
