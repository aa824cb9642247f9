-- cdmDatatype (integer fields): values that are not whole numbers.
SELECT {key} AS example_key
FROM {schema}.{table} t
WHERE t.{field} IS NOT NULL
  AND (TRY_CAST(t.{field} AS BIGINT) IS NULL
       OR TRY_CAST(TRY_CAST(t.{field} AS VARCHAR) AS DOUBLE) <> TRY_CAST(t.{field} AS BIGINT))
