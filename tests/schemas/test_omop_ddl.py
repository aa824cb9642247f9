"""Conformance of the generated CDM v5.4 schema with the OHDSI specification CSV."""

from __future__ import annotations

import csv

import duckdb
import pytest

from schemas.omop.ddl import create_omop_schema, omop_ddl
from schemas.omop.spec import FIELD_CSV, TABLE_CSV

COMPATIBLE = {
    "integer": {"INTEGER", "BIGINT"},
    "bigint": {"BIGINT"},
    "float": {"DOUBLE", "FLOAT"},
    "date": {"DATE"},
    "datetime": {"TIMESTAMP"},
}


def _spec_fields() -> list[dict[str, str]]:
    with FIELD_CSV.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def con():
    con = duckdb.connect()
    create_omop_schema(con, "stage_omop")
    yield con
    con.close()


def test_spec_is_complete():
    fields = _spec_fields()
    with TABLE_CSV.open(encoding="utf-8-sig", newline="") as fh:
        tables = list(csv.DictReader(fh))
    assert len(tables) == 39
    assert len(fields) == 432


def test_every_table_and_column_present_with_compatible_type(con):
    actual = {
        (t, c): (ty, nullable)
        for t, c, ty, nullable in con.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'stage_omop'"
        ).fetchall()
    }
    spec = _spec_fields()
    assert len(actual) == len(spec)
    for f in spec:
        key = (f["cdmTableName"].lower(), f["cdmFieldName"].strip('"').lower())
        assert key in actual, key
        ty, nullable = actual[key]
        cdm_type = f["cdmDatatype"].lower()
        expected = {"VARCHAR"} if cdm_type.startswith("varchar") else COMPATIBLE[cdm_type]
        assert ty in expected, (key, ty, cdm_type)
        assert (nullable == "NO") == (f["isRequired"] == "Yes"), (key, nullable)


def test_primary_keys_declared(con):
    declared = {
        (t, tuple(cols))
        for t, cols in con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE schema_name = 'stage_omop' AND constraint_type = 'PRIMARY KEY'"
        ).fetchall()
    }
    expected = {
        (f["cdmTableName"].lower(), (f["cdmFieldName"].lower(),)) for f in _spec_fields() if f["isPrimaryKey"] == "Yes"
    }
    assert declared == expected
    assert len(expected) == 28


def test_primary_key_rejects_duplicates(con):
    con.execute("INSERT INTO stage_omop.location (location_id) VALUES (1)")
    with pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO stage_omop.location (location_id) VALUES (1)")
    con.execute("DELETE FROM stage_omop.location")


def test_idempotent_and_two_schemas(con):
    create_omop_schema(con, "stage_omop")
    create_omop_schema(con, "omop")
    n = con.execute(
        "SELECT table_schema, count(*) FROM information_schema.tables "
        "WHERE table_schema IN ('stage_omop', 'omop') GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert n == [("omop", 39), ("stage_omop", 39)]


def test_reserved_word_column_is_quoted():
    ddl = "\n".join(omop_ddl("omop"))
    assert '"offset" VARCHAR' in ddl


@pytest.mark.parametrize("bad", ["omop; DROP TABLE x", "Omop", "1omop", "", "omop.x", 'om"op'])
def test_schema_name_is_checked(bad):
    with pytest.raises(ValueError):
        omop_ddl(bad)
