"""The named analyst queries of ``queries.sql`` (for the README/demo and tests).

Why a file of named SQL rather than views: the queries are examples of the mapped model, to read
and adapt; the schema is a checked identifier (``{cdm}``), the study a bound parameter ($nct_id).
"""
from __future__ import annotations

import re
from pathlib import Path

from schemas.omop.spec import check_identifier

QUERIES_SQL = Path(__file__).parent / "queries.sql"


def named_queries(cdm: str = "omop") -> dict[str, str]:
    """{name: SQL} with ``{cdm}`` filled in."""
    check_identifier(cdm)
    text = QUERIES_SQL.read_text(encoding="utf-8")
    parts = re.split(r"^-- name: (\w+)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1].strip().rstrip(";").replace("{cdm}", cdm) for i in range(1, len(parts), 2)}


def run_query(con, name: str, nct_id: str, cdm: str = "omop") -> list[tuple]:
    return con.execute(named_queries(cdm)[name], {"nct_id": nct_id}).fetchall()
