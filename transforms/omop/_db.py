"""Small helpers shared by the OMOP mappings: SQL files, transactions, spec-shaped inserts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import duckdb

from schemas.omop.spec import cdm_tables, check_identifier, check_relation, quote

SQL_DIR = Path(__file__).parent / "sql"


@lru_cache(maxsize=None)
def _read_sql(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")


def sql_file(name: str, **identifiers: str) -> str:
    """Load ``sql/<name>`` and fill ``{schema}``-style placeholders with checked identifiers only.

    Data never goes through here: values are bound as ``$name``/``?`` parameters by the caller.
    """
    checked = {k: check_relation(v) for k, v in identifiers.items()}
    return _read_sql(name).format(**checked)


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run in one transaction, or join the caller's if one is open (DuckDB has no savepoints).

    Joining matters for the publish step, which moves stage rows into ``omop`` in a single
    transaction of its own.
    """
    if in_transaction(con):
        yield
        return
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    """Probe without side effects: a failed BEGIN would abort the caller's transaction in DuckDB.

    In autocommit mode every statement gets a new transaction id; inside a transaction both
    reads return the same one.
    """
    first = con.execute("SELECT txid_current()").fetchone()[0]
    return con.execute("SELECT txid_current()").fetchone()[0] == first


def spec_select(table: str, source: str) -> str:
    """``SELECT`` list casting ``source``'s same-named columns to the CDM types, varchars cut to spec length.

    DuckDB ignores ``VARCHAR(n)``; cutting here keeps the rows loadable into engines that do not.
    Columns absent from ``source`` must be present as NULLs: the caller controls the shape.
    """
    check_identifier(table)
    check_relation(source)
    cols = []
    for f in cdm_tables()[table].fields:
        expr = f"{source}.{quote(f.name)}"
        if f.max_length is not None:
            expr = f"left(CAST({expr} AS VARCHAR), {int(f.max_length)})"
        cols.append(f"CAST({expr} AS {f.duckdb_type}) AS {quote(f.name)}")
    return ",\n       ".join(cols)


def insert_from(con: duckdb.DuckDBPyConnection, schema: str, table: str, source: str) -> int:
    """Insert all rows of relation ``source`` (columns named as in the CDM) into ``schema.table``."""
    target = f"{quote(schema)}.{quote(table)}"
    note_cuts(con, table, source)
    sql = f"INSERT INTO {target} SELECT {spec_select(table, source)} FROM {check_relation(source)}"
    con.execute(sql)
    return con.execute(f"SELECT count(*) FROM {check_relation(source)}").fetchone()[0]


def table_checksum(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> tuple[int, int]:
    """Row count and an order-independent hash of all rows; equal before and after a no-op reload."""
    target = f"{quote(schema)}.{quote(table)}"
    return con.execute(f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM {target} t").fetchone()


# Values longer than their CDM varchar are cut to fit (spec_select), and the source stays whole in
# raw; this temp table names each cut so the gate can report it (quarantine.value_cut, and a rule
# `value_cut.<table>.<column>` of level warning) instead of the cut going unremarked.
CUTS = "_omop_values_cut"
KEPT_CUTS = "_omop_values_cut_kept"


def note_cuts(con: duckdb.DuckDBPyConnection, table: str, source: str, present: set[str] | None = None) -> None:
    """Record in temp table ``CUTS`` each value of ``source`` longer than its column in ``table``.

    One statement per table, reading only the varchar columns. The row is named by the table's
    primary key, or by the value's md5 in a table without one, so a row noted twice counts once."""
    spec = cdm_tables()[check_identifier(table)]
    check_relation(source)
    fields = [f for f in spec.fields if f.max_length is not None and (present is None or f.name in present)]
    if not fields:
        return
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {CUTS} (table_name VARCHAR, column_name VARCHAR, row_key VARCHAR, "
                "spec_length INTEGER, length BIGINT, head VARCHAR, cut VARCHAR)")
    key = _row_key(spec)
    parts, params = [], []
    for f in fields:
        value = f"CAST({quote(f.name)} AS VARCHAR)"
        row_key = f"CAST({quote(key)} AS VARCHAR)" if key else f"'md5:' || md5({value})"
        parts.append(f"SELECT ?, ?, {row_key}, ?, length({value}), left({value}, 60), left({value}, ?) "
                     f"FROM {source} WHERE length({value}) > ?")
        params += [table, f.name, f.max_length, f.max_length, f.max_length]
    con.execute(f"INSERT INTO {CUTS} " + " UNION ALL ".join(parts), params)


def _row_key(spec) -> str | None:
    """The column naming a row in the cut notes: a one-column primary key, else none (the value's md5)."""
    return spec.primary_key[0] if len(spec.primary_key) == 1 else None


def reset_cuts(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP TABLE IF EXISTS temp.main.{CUTS}")


def _has_temp(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [name]).fetchone()[0])


def keep_cuts(con: duckdb.DuckDBPyConnection, schema: str) -> str:
    """Temp table ``KEPT_CUTS``: the noted cuts whose cut value ``schema`` holds, one per row and
    column, and the notes cleared. A shared row (a site many studies list) is staged from the first
    study that lists it: another study's longer description of it was noted, but never staged."""
    check_identifier(schema)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {KEPT_CUTS} (table_name VARCHAR, column_name VARCHAR, row_key VARCHAR, "
                "spec_length INTEGER, length BIGINT, head VARCHAR)")
    if not _has_temp(con, CUTS):
        return KEPT_CUTS
    tables = cdm_tables()
    for table, column in con.execute(f"SELECT DISTINCT table_name, column_name FROM {CUTS} ORDER BY ALL").fetchall():
        spec = tables[check_identifier(table)]
        col = quote(spec.field(column).name)
        key = _row_key(spec)
        held = (f"CAST(t.{quote(key)} AS VARCHAR) = n.row_key AND t.{col} = n.cut" if key else f"t.{col} = n.cut")
        con.execute(f"""
            INSERT INTO {KEPT_CUTS}
            SELECT table_name, column_name, row_key, spec_length, length, head FROM {CUTS} n
            WHERE table_name = ? AND column_name = ?
              AND EXISTS (SELECT 1 FROM {quote(schema)}.{quote(table)} t WHERE {held})
            QUALIFY row_number() OVER (PARTITION BY row_key ORDER BY length DESC, head) = 1""", [table, column])
    reset_cuts(con)
    return KEPT_CUTS


def summarise_cuts(con: duckdb.DuckDBPyConnection, relation: str, where: str = "", params: list | None = None) -> list[dict]:
    """One entry per CDM column of the cuts in ``relation`` (``CUTS``, ``KEPT_CUTS`` or
    quarantine.value_cut, filtered by ``where``): rows cut, longest value, five readable examples."""
    check_relation(relation)
    if relation in (CUTS, KEPT_CUTS) and not _has_temp(con, relation):
        return []
    rows = con.execute(f"""
        SELECT table_name, column_name, any_value(spec_length), count(DISTINCT row_key), max(length),
               list(DISTINCT (row_key, length, head) ORDER BY (row_key, length, head))[:5]
        FROM {relation} {where} GROUP BY table_name, column_name ORDER BY table_name, column_name""", params or []).fetchall()
    return [{"table": t, "column": c, "spec_length": n, "rows": rows_cut, "longest": longest,
             "examples": [(f"{t}: " if k.startswith("md5:") else f"{t} {k}: ")
                          + f"{c} of {length} characters cut to {n} ({head!r}{'…' if length > 60 else ''})"
                          for k, length, head in examples]}
            for t, c, n, rows_cut, longest, examples in rows]


def values_cut(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The cuts noted on this connection since ``reset_cuts`` (before ``keep_cuts``)."""
    return summarise_cuts(con, CUTS)
