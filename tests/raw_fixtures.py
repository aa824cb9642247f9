"""Fixtures shared by the OMOP and DQD tests: a temp DuckDB whose raw layer holds the real test records."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]
CTGOV = REPO / "tests" / "data" / "ctgov"
SEED = "NCT06668571"


def insert_raw(con: duckdb.DuckDBPyConnection, record: dict, source_file: str, source_record: str = "") -> str:
    """Insert one API v2 study record the way ingestion does (keyed on the nctId inside the record)."""
    text = json.dumps(record, sort_keys=True)
    sha = hashlib.sha256(text.encode()).hexdigest()
    nct_id = record["protocolSection"]["identificationModule"]["nctId"]
    last_update = record["protocolSection"].get("statusModule", {}).get("lastUpdatePostDateStruct", {}).get("date")
    con.execute(
        "INSERT INTO raw.ctgov_study_version (nct_id, content_hash, last_update_post_date, payload, source_file,"
        " source_record, file_sha256, ingested_at) VALUES (?, ?, TRY_CAST(? AS DATE), ?, ?, ?, ?, now())",
        [nct_id, sha, last_update, text, source_file, source_record, sha],
    )
    return nct_id


def raw_connection(files: list[Path] | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute((REPO / "schemas" / "raw" / "raw.sql").read_text())
    for path in files if files is not None else sorted(CTGOV.glob("NCT*.json")):
        insert_raw(con, json.loads(path.read_text()), path.relative_to(REPO).as_posix())
    return con


@pytest.fixture
def raw_con():
    con = raw_connection()
    yield con
    con.close()


@pytest.fixture(scope="module")
def mapped_con():
    """All 32 real records (the seed among them) mapped once into ``omop`` with the demo vocabulary."""
    from transforms.omop.trials import map_trials
    from transforms.omop.vocabulary import load_vocabulary

    con = raw_connection()
    load_vocabulary(con, "omop")
    map_trials(con)
    yield con
    con.close()


@pytest.fixture(scope="session")
def raw_helpers():
    """The helpers above for tests (test dirs are not packages, so conftest cannot be imported)."""
    import types

    return types.SimpleNamespace(
        repo=REPO, ctgov=CTGOV, seed=SEED, insert=insert_raw, connection=raw_connection
    )
