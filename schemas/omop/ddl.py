"""DDL for a complete OMOP CDM v5.4 schema, generated from the bundled specification CSV.

Foreign keys are deliberately not declared: DuckDB cannot add them after the fact, it would
force a strict load order on the vocabulary (tens of millions of rows checked row by row) and
it rejects the delete-then-insert pattern the mappings use for reloads once other rows point
at a key. Referential integrity is instead checked by the DQD ``isForeignKey`` check
(``expectations.dqd.checks``), which is generated from the same specification.
"""

from __future__ import annotations

import duckdb

from schemas.omop.spec import cdm_tables, check_identifier, quote


def omop_ddl(schema: str, primary_keys: bool = True) -> list[str]:
    """One ``CREATE TABLE IF NOT EXISTS`` per CDM table, preceded by ``CREATE SCHEMA``.

    ``primary_keys=False`` is for staging schemas: the DQD suite's isPrimaryKey rule checks their keys
    (a duplicate fails the gate with the rows that repeat, where a declared key made the insert
    itself throw), and DuckDB maintained an index per staged table for nothing."""
    s = quote(schema)
    statements = [f"CREATE SCHEMA IF NOT EXISTS {s}"]
    for table in cdm_tables().values():
        cols = []
        for f in table.fields:
            col = f"    {quote(f.name)} {f.duckdb_type}"
            if f.required:
                col += " NOT NULL"
            cols.append(col)
        if table.primary_key and primary_keys:
            cols.append("    PRIMARY KEY (" + ", ".join(quote(c) for c in table.primary_key) + ")")
        statements.append(f"CREATE TABLE IF NOT EXISTS {s}.{quote(table.name)} (\n" + ",\n".join(cols) + "\n)")
    return statements


def create_omop_schema(con: duckdb.DuckDBPyConnection, schema: str, primary_keys: bool = True) -> None:
    """Create the schema and all 39 tables; idempotent, existing tables and rows are kept."""
    check_identifier(schema)
    for statement in omop_ddl(schema, primary_keys):
        con.execute(statement)
