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
    sql = f"INSERT INTO {target} SELECT {spec_select(table, source)} FROM {check_relation(source)}"
    con.execute(sql)
    return con.execute(f"SELECT count(*) FROM {check_relation(source)}").fetchone()[0]


def table_checksum(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> tuple[int, int]:
    """Row count and an order-independent hash of all rows; equal before and after a no-op reload."""
    target = f"{quote(schema)}.{quote(table)}"
    return con.execute(f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM {target} t").fetchone()
