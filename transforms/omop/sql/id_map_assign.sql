INSERT INTO {meta}.omop_id_map (table_name, natural_key, id, owner)
SELECT $table_name,
       k.natural_key,
       coalesce((SELECT max(id) FROM {meta}.omop_id_map WHERE table_name = $table_name), 0)
           + row_number() OVER (ORDER BY k.first_seen, k.natural_key),
       k.owner
FROM (SELECT natural_key, min(owner) AS owner, min(first_seen) AS first_seen FROM {keys} GROUP BY natural_key) k
WHERE NOT EXISTS (
    SELECT 1 FROM {meta}.omop_id_map m
    WHERE m.table_name = $table_name AND m.natural_key = k.natural_key
);
