-- isPrimaryKey: rows whose key value occurs more than once.
SELECT t.{field} AS example_key
FROM {schema}.{table} t
WHERE t.{field} IN (SELECT {field} FROM {schema}.{table} GROUP BY {field} HAVING count(*) > 1)
