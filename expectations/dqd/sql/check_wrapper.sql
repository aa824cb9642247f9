-- Wraps one check template: violated rows, denominator, up to five example keys.
WITH violating AS ({violations})
SELECT (SELECT count(*) FROM violating) AS violated,
       (SELECT count(*) FROM {schema}.{table}) AS denominator,
       (SELECT list(CAST(example_key AS VARCHAR)) FROM (SELECT example_key FROM violating LIMIT 5)) AS examples
