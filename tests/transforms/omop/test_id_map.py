"""meta.omop_id_map: unique by its writer, not by an index (see transforms/omop/sql/id_map_create.sql)."""

from __future__ import annotations

from transforms.omop.id_map import ensure_id_map
from transforms.omop.trials import map_trials
from transforms.omop.vocabulary import load_vocabulary

# The definition id maps were created with before the keys went (DuckDB cannot drop a constraint).
KEYED_DDL = """
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE meta.omop_id_map (
    table_name VARCHAR NOT NULL, natural_key VARCHAR NOT NULL, id BIGINT NOT NULL, owner VARCHAR,
    PRIMARY KEY (table_name, natural_key), UNIQUE (table_name, id)
);
"""


def keys(con) -> list[str]:
    return sorted(r[0] for r in con.execute(
        "SELECT constraint_type FROM duckdb_constraints() WHERE schema_name = 'meta' AND table_name = 'omop_id_map'"
        " AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')").fetchall())


def uniqueness(con) -> tuple:
    return con.execute("SELECT count(*), count(DISTINCT (table_name, natural_key)), count(DISTINCT (table_name, id))"
                       " FROM meta.omop_id_map").fetchone()


def test_ids_are_unique_without_an_index(raw_con):
    load_vocabulary(raw_con, "omop")
    map_trials(raw_con)
    first = raw_con.execute("SELECT * FROM meta.omop_id_map ORDER BY ALL").fetchall()
    map_trials(raw_con)  # the same studies again: no new id
    assert keys(raw_con) == []
    n, natural, ids = uniqueness(raw_con)
    assert n == natural == ids and n > 1000
    assert raw_con.execute("SELECT * FROM meta.omop_id_map ORDER BY ALL").fetchall() == first


def test_keyed_id_map_of_an_earlier_warehouse_is_rebuilt_with_its_rows(raw_con):
    raw_con.execute(KEYED_DDL)
    raw_con.execute("INSERT INTO meta.omop_id_map VALUES ('location', 'a', 1, NULL), ('location', 'b', 2, NULL), "
                    "('metadata', 'NCT1:x', 1, 'NCT1')")
    assert keys(raw_con) == ["PRIMARY KEY", "UNIQUE"]
    before = raw_con.execute("SELECT * FROM meta.omop_id_map ORDER BY ALL").fetchall()
    ensure_id_map(raw_con)
    assert keys(raw_con) == []
    assert raw_con.execute("SELECT * FROM meta.omop_id_map ORDER BY ALL").fetchall() == before
    ensure_id_map(raw_con)  # nothing left to rebuild
    assert raw_con.execute("SELECT count(*) FROM meta.omop_id_map").fetchone()[0] == 3


def test_ids_are_the_same_however_the_studies_are_split(raw_con):
    """The OMOP stage maps NCT id ranges in order, as many as its chunk size makes: a shared site or
    investigator must get the same id as in one batch. Numbered by key alone, each part numbered its
    own keys, and the ids moved with the chunk size."""
    load_vocabulary(raw_con, "omop")
    map_trials(raw_con)
    ncts = [r[0] for r in raw_con.execute("SELECT nct_id FROM raw.ctgov_study_current ORDER BY nct_id").fetchall()]
    for lo, hi in ((ncts[0], ncts[9]), (ncts[10], ncts[19]), (ncts[20], ncts[-1])):
        raw_con.execute("CREATE OR REPLACE TEMP TABLE part AS SELECT * FROM raw.ctgov_study_current "
                        "WHERE nct_id BETWEEN ? AND ?", [lo, hi])
        map_trials(raw_con, source="part", schema="omop_parts", id_map_schema="meta_parts", vocab_schema="omop")
    ids = "SELECT table_name, natural_key, id FROM {}.omop_id_map ORDER BY ALL"
    whole, parts = (raw_con.execute(ids.format(m)).fetchall() for m in ("meta", "meta_parts"))
    shared = raw_con.execute("SELECT count(*) FROM meta.omop_id_map WHERE owner IS NULL").fetchone()[0]
    assert len(ncts) > 20 and shared > 100
    assert parts == whole
