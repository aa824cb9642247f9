"""DDL and data contracts. SQL files here are applied by code; identifiers never come from input."""
from __future__ import annotations

from pathlib import Path

SCHEMAS_DIR = Path(__file__).resolve().parent


def sql_text(relative: str) -> str:
    return (SCHEMAS_DIR / relative).read_text(encoding="utf-8")


def apply_sql(con, relative: str) -> None:
    """Run a DDL file of this package (statements are idempotent: IF NOT EXISTS / OR REPLACE)."""
    con.execute(sql_text(relative))


def ensure_base_schemas(con) -> None:
    apply_sql(con, "raw/raw.sql")
    _unindex_study_versions(con)
    apply_sql(con, "quarantine/quarantine.sql")


def _unindex_study_versions(con) -> None:
    """raw.ctgov_study_version is unique by ingestion, not by the keys earlier warehouses declared
    (see raw/raw.sql)."""
    drop_keys(con, "raw", "ctgov_study_version", lambda: apply_sql(con, "raw/raw.sql"))


def ensure_site_schemas(con) -> None:
    """The site deliveries' raw tables. raw.site_delivery keeps every evaluated state of a folder in
    order, so a state seen before (a folder restored) is a row again: earlier warehouses declared
    state_sha256 UNIQUE, which made a restored folder look unchanged (see sites/raw_sites.sql)."""
    apply_sql(con, "sites/raw_sites.sql")
    drop_keys(con, "raw", "site_delivery", lambda: apply_sql(con, "sites/raw_sites.sql"), columns=["state_sha256"])


def drop_keys(con, schema: str, table: str, create, columns: list[str] | None = None) -> None:
    """Rebuild `schema.table` once without the PRIMARY KEY/UNIQUE an earlier version declared (with
    `columns`: only the one on exactly those columns; the table's other keys stay as `create()` makes them).

    DuckDB cannot drop a constraint, so the rows are copied into the current definition (made by
    `create()`, same columns in the same order) in one transaction; a table created by this version
    has nothing to rebuild. Names come from code, checked."""
    from schemas.omop.spec import check_identifier
    from transforms.omop._db import transaction  # imported here: that module imports schemas.omop

    schema, table = check_identifier(schema), check_identifier(table)
    sql = ("SELECT count(*) FROM duckdb_constraints() WHERE schema_name = ? AND table_name = ?"
           " AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')")
    params: list = [schema, table]
    if columns:
        sql += " AND constraint_column_names = ?::VARCHAR[]"
        params.append(list(columns))
    keyed = con.execute(sql, params).fetchone()[0]
    if not keyed:
        return
    with transaction(con):
        con.execute(f"ALTER TABLE {schema}.{table} RENAME TO {table}_keyed")
        create()
        con.execute(f"INSERT INTO {schema}.{table} SELECT * FROM {schema}.{table}_keyed")
        con.execute(f"DROP TABLE {schema}.{table}_keyed")
