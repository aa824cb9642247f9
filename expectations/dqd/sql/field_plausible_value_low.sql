-- plausibleValueLow: values below the plausible minimum.
SELECT {key} AS example_key FROM {schema}.{table} t WHERE t.{field} < $bound
