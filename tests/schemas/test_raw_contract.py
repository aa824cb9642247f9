"""raw.ctgov_study_version: unique by what ingestion does, not by an index (see schemas/raw/raw.sql)."""

from __future__ import annotations

import json

from schemas import ensure_base_schemas
from tests.raw_fixtures import insert_raw
from tests.conftest import page_files, study_files, version_files
from transforms.ctgov.ingest import ingest_landing

# The definition warehouses were created with before the keys went (DuckDB cannot drop a constraint).
INDEXED_DDL = """
CREATE SCHEMA raw;
CREATE SEQUENCE raw.ctgov_study_version_seq;
CREATE TABLE raw.ctgov_study_version (
    version_key BIGINT PRIMARY KEY DEFAULT nextval('raw.ctgov_study_version_seq'),
    nct_id VARCHAR NOT NULL, content_hash VARCHAR NOT NULL, last_update_post_date DATE, version_holder DATE,
    payload JSON NOT NULL, source_file VARCHAR NOT NULL, source_record VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL, ingested_at TIMESTAMP NOT NULL, run_id VARCHAR,
    UNIQUE (nct_id, content_hash)
);
"""


def keys(con) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT constraint_type FROM duckdb_constraints() WHERE schema_name = 'raw' "
        "AND table_name = 'ctgov_study_version' AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')").fetchall()]


def land_everything(landing) -> None:
    # Pages and single-study files overlap: the same contents arrive more than once.
    for p in study_files():
        landing.drop(p)
    for p in page_files():
        landing.drop(p, subdir="pages")
    for p in version_files():
        landing.drop(p, subdir="versions")


def test_versions_are_unique_without_an_index(con, landing):
    land_everything(landing)
    ingest_landing(con, landing.root, run_id="first")
    ingest_landing(con, landing.root, run_id="again")  # nothing new the second time
    assert keys(con) == []
    n, versions, contents = con.execute(
        "SELECT count(*), count(DISTINCT version_key), count(DISTINCT (nct_id, content_hash)) FROM raw.ctgov_study_version"
    ).fetchone()
    assert n == versions == contents and n > len(study_files())


def test_indexed_table_of_an_earlier_warehouse_is_rebuilt_with_its_rows(con, landing):
    con.execute(INDEXED_DDL)
    for p in study_files():  # rows written straight into the old table (ingestion would rebuild it first)
        insert_raw(con, json.loads(p.read_text()), p.name)
    assert sorted(keys(con)) == ["PRIMARY KEY", "UNIQUE"]
    before = con.execute("SELECT * FROM raw.ctgov_study_version ORDER BY version_key").fetchall()

    ensure_base_schemas(con)

    assert keys(con) == []
    assert con.execute("SELECT * FROM raw.ctgov_study_version ORDER BY version_key").fetchall() == before
    # the sequence carries on after the copied keys, and the views read the rebuilt table
    record = json.loads(study_files()[0].read_text())
    record["protocolSection"]["identificationModule"]["briefTitle"] += " (amended)"
    landing.write("changed.json", json.dumps(record))
    assert ingest_landing(con, landing.root, run_id="after").new_versions == 1
    assert con.execute("SELECT max(version_key) FROM raw.ctgov_study_version").fetchone()[0] == before[-1][0] + 1
    assert con.execute("SELECT count(*) FROM raw.ctgov_study_current").fetchone()[0] == len(
        {r[1] for r in before})
    ensure_base_schemas(con)  # nothing left to rebuild
    assert con.execute("SELECT count(*) FROM raw.ctgov_study_version").fetchone()[0] == len(before) + 1
