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
    """Rebuild raw.ctgov_study_version without the keys earlier warehouses declared (see raw/raw.sql).

    DuckDB cannot drop a constraint, so the table is copied once into the current definition, in
    one transaction; a warehouse created by this version has nothing to rebuild.
    """
    indexed = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE schema_name = 'raw' AND table_name = 'ctgov_study_version'"
        " AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
    ).fetchone()[0]
    if not indexed:
        return
    from transforms.omop._db import transaction  # imported here: that module imports schemas.omop

    with transaction(con):
        con.execute("ALTER TABLE raw.ctgov_study_version RENAME TO ctgov_study_version_indexed")
        apply_sql(con, "raw/raw.sql")
        con.execute("INSERT INTO raw.ctgov_study_version SELECT * FROM raw.ctgov_study_version_indexed")
        con.execute("DROP TABLE raw.ctgov_study_version_indexed")
