"""Helpers shared by the participant mappings: SQL files beside the code, spec-shaped inserts,
stable ids and per-site replacement.

Why a second ``insert`` helper: the participant SQL names only the CDM columns it fills; the rest
are NULL by the CDM's own definition, and listing them in every .sql file would bury the mapping.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import duckdb

from schemas.omop.spec import cdm_tables, check_identifier, check_relation, quote
from transforms.omop._db import note_cuts
from transforms.omop.id_map import assign_ids

SQL_DIR = Path(__file__).parent / "sql"
CONCEPTS_CSV = Path(__file__).parent / "source_concepts.csv"
CRF_TYPE = 32809  # Case Report Form (shared key_concepts.csv), type concept of every CRF row

# Participant tables, their primary key, and the temp table the natural keys are read from.
PK = {"person": "person_id", "observation_period": "observation_period_id",
      "visit_occurrence": "visit_occurrence_id", "drug_exposure": "drug_exposure_id",
      "measurement": "measurement_id", "observation": "observation_id",
      "condition_occurrence": "condition_occurrence_id"}


@lru_cache(maxsize=None)
def _read(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")


def sql_file(name: str, **identifiers: str) -> str:
    """``sql/<name>`` with ``{placeholders}`` filled by checked identifiers only (values are parameters)."""
    return _read(name).format(**{k: check_relation(v) for k, v in identifiers.items()})


def run_sql(con: duckdb.DuckDBPyConnection, name: str, params: dict | None = None, part: int | None = None,
            **identifiers: str) -> None:
    """Execute ``sql/<name>`` statement by statement, each with only the ``$parameters`` it names.

    ``part`` selects the section before (0) or after (1) the ``-- @ids`` marker: key extraction runs
    before stable ids are allocated, the mapping that joins on them after.
    """
    text = sql_file(name, **identifiers)
    if part is not None:
        sections = text.split("-- @ids", 1)
        text = sections[part] if len(sections) > part else ""
    for statement in (s.strip() for s in text.split(";\n")):
        if not statement or all(line.strip().startswith("--") or not line.strip() for line in statement.splitlines()):
            continue
        wanted = {k: v for k, v in (params or {}).items() if f"${k}" in statement}
        con.execute(statement, wanted) if wanted else con.execute(statement)


def columns_of(con: duckdb.DuckDBPyConnection, relation: str) -> set[str]:
    check_relation(relation)
    return {d[0] for d in con.execute(f"SELECT * FROM {relation} LIMIT 0").description}


def insert_spec(con: duckdb.DuckDBPyConnection, schema: str, table: str, source: str) -> int:
    """Insert ``source`` into ``schema.table``: same-named columns cast to the CDM type (varchars cut
    to spec length, as transforms.omop._db.spec_select does), every other CDM column NULL. Rows with
    the same primary key are replaced."""
    present = columns_of(con, source)
    cols = []
    for f in cdm_tables()[table].fields:
        if f.name not in present:
            cols.append(f"CAST(NULL AS {f.duckdb_type}) AS {quote(f.name)}")
            continue
        expr = f"s.{quote(f.name)}"
        if f.max_length is not None:
            expr = f"left(CAST({expr} AS VARCHAR), {int(f.max_length)})"
        cols.append(f"CAST({expr} AS {f.duckdb_type}) AS {quote(f.name)}")
    if table in PK:  # a row that moved owner (a participant transferred between sites) is replaced, not duplicated
        pk = quote(PK[table])
        con.execute(f"DELETE FROM {quote(schema)}.{quote(table)} WHERE {pk} IN (SELECT {pk} FROM {check_relation(source)})")
    note_cuts(con, table, source, present)
    con.execute(f"INSERT INTO {quote(schema)}.{quote(table)} SELECT {', '.join(cols)} FROM {check_relation(source)} s")
    return con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]


def allocate(con: duckdb.DuckDBPyConnection, id_map_schema: str, table: str, source: str) -> None:
    """Stable ids for the ``natural_key``/``owner`` columns of ``source`` (new keys only)."""
    check_identifier(table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _pt_keys AS SELECT DISTINCT natural_key, owner, owner AS first_seen "
                f"FROM {check_relation(source)}")
    assign_ids(con, id_map_schema, table, "_pt_keys")


def clear_sites(con: duckdb.DuckDBPyConnection, schema: str, id_map_schema: str, owners: str) -> None:
    """Delete from ``schema`` every participant row owned by the sites in relation ``owners``
    (column ``owner`` = '<NCT id>|site:<site id>'), so the current delivery replaces the site's
    rows whole: a participant or record the new delivery no longer carries goes too."""
    s, m = quote(schema), quote(id_map_schema)
    check_relation(owners)
    # cohort and death have no primary key of their own: their rows go by the person they are about
    for table, person in (("cohort", "subject_id"), ("death", "person_id")):
        con.execute(f"DELETE FROM {s}.{quote(table)} WHERE {quote(person)} IN (SELECT id FROM {m}.omop_id_map "
                    f"WHERE table_name = 'person' AND owner IN (SELECT owner FROM {owners}))")
    for table, pk in PK.items():
        con.execute(f"DELETE FROM {s}.{quote(table)} WHERE {quote(pk)} IN (SELECT id FROM {m}.omop_id_map "
                    f"WHERE table_name = ? AND owner IN (SELECT owner FROM {owners}))", [table])
