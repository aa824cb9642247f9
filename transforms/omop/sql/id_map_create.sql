CREATE SCHEMA IF NOT EXISTS {meta};
-- Unique by its one writer, not by an index: id_map_assign.sql inserts only natural keys the table
-- does not hold (one row each, grouped) and numbers them max + 1 on, in the single writing process.
-- The PRIMARY KEY (table_name, natural_key) and UNIQUE (table_name, id) it had kept two ART indexes
-- in memory that DuckDB cannot evict: ~9 MB per 5,000 studies (long site keys), 180 MB at 100,000
-- studies, which ran the OMOP stage out of a 384 MB cap and would need ~1 GB for the registry.
CREATE TABLE IF NOT EXISTS {meta}.omop_id_map (
    table_name  VARCHAR NOT NULL,   -- OMOP table the id belongs to
    natural_key VARCHAR NOT NULL,   -- documented per table in transforms/omop/<table>.py
    id          BIGINT  NOT NULL,   -- the OMOP *_id, allocated max+1, never reused
    owner       VARCHAR             -- NCT id for study-owned rows, NULL for shared rows
);

-- A study's site keys that carry the zip (care_site.py: where the study lists one facility, city, state
-- and country at different zips), replaced per study by each registry mapping (site_zip_key.sql). A
-- roster's site takes such a key only when its own study's listing made it (site_extract.sql): any
-- study's zip key in the id map made site 001 another study's Mayo.
CREATE TABLE IF NOT EXISTS {meta}.site_zip_key (
    nct_id   VARCHAR NOT NULL,
    site_key VARCHAR NOT NULL
);
