CREATE SCHEMA IF NOT EXISTS {meta};
CREATE TABLE IF NOT EXISTS {meta}.omop_id_map (
    table_name  VARCHAR NOT NULL,   -- OMOP table the id belongs to
    natural_key VARCHAR NOT NULL,   -- documented per table in transforms/omop/<table>.py
    id          BIGINT  NOT NULL,   -- the OMOP *_id, allocated max+1, never reused
    owner       VARCHAR,            -- NCT id for study-owned rows, NULL for shared rows
    PRIMARY KEY (table_name, natural_key),
    UNIQUE (table_name, id)
);
