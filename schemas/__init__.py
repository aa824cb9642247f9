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
    apply_sql(con, "quarantine/quarantine.sql")
