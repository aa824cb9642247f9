"""Publishing a gated batch: one DuckDB transaction moves staged rows into the published schemas.

Everything between BEGIN and COMMIT either lands together or not at all: a crash, a failed merge
or a killed process leaves the published schemas (and meta.study_state) exactly as they were, and
the batch is staged again by the next run because its study versions are still undecided.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Callable

from schemas import apply_sql
from schemas.omop.spec import quote

# Tables whose row counts are recorded in meta.load_log (schema-qualified; identifiers from code).
Merge = Callable[[object, str], dict[str, int]]  # (con, run_id) -> {table: rows merged}


def ensure_stages(con) -> None:
    """The FHIR and OMOP staging schemas, empty where this run has not staged anything yet.

    A publish drops them (their rows are spent), and the registry's steps create them again; a run
    without those steps (the automation's for a new site delivery: the site stage and the publish,
    or the publish alone) found no `stage_fhir.resource` and failed. Without primary keys, as the
    OMOP stage makes them (the gate checks the keys, expectations.omop_gate.reset_stage)."""
    from schemas.omop.ddl import create_omop_schema
    from transforms.fhir.store import create_fhir_schema

    have = {r[0] for r in con.execute("SELECT DISTINCT schema_name FROM duckdb_tables()").fetchall()}
    if "stage_fhir" not in have:
        create_fhir_schema(con, "stage_fhir")
    if "stage_omop" not in have:
        create_omop_schema(con, "stage_omop", primary_keys=False)


def counted_tables(con) -> list[str]:
    rows = con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
        "WHERE schema_name IN ('fhir', 'omop') OR (schema_name = 'raw' AND table_name = 'ctgov_study_version') "
        "ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def table_counts(con) -> dict[str, int]:
    out = {}
    for name in counted_tables(con):
        # Identifiers from DuckDB's own catalog (never from input), checked and quoted; no values here.
        schema, table = name.split(".")
        out[name] = con.execute(f"SELECT count(*) FROM {quote(schema)}.{quote(table)}").fetchone()[0]
    return out


def publish_batch(con, run_id: str, suites_passed: list[str], merges: list[Merge]) -> dict:
    """Merge the staged batch and record it; returns what the load log says.

    What the batch's deletes pin in DuckDB stays with the connection: the caller should use a new one
    afterwards (see trialhouse.workfile.delete_headroom for the limit it needs meanwhile)."""
    apply_sql(con, "meta/meta.sql")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    con.execute("BEGIN TRANSACTION")
    try:
        merged: dict[str, int] = {}
        for merge in merges:
            merged.update(merge(con, run_id))
        studies = con.execute("SELECT count(*) FROM stage.ctgov_study").fetchone()[0]
        # Earlier published contents of these studies are superseded; the staged ones are published.
        con.execute(
            "UPDATE meta.study_state SET status = 'superseded', run_id = ?, updated_at = ? "
            "WHERE status = 'published' AND nct_id IN (SELECT nct_id FROM stage.ctgov_study)",
            [run_id, now],
        )
        con.execute(
            "INSERT OR REPLACE INTO meta.study_state "
            "SELECT nct_id, content_hash, 'published', ?, ? FROM stage.ctgov_study",
            [run_id, now],
        )
        # Older held versions of these studies are superseded by the published one: no longer held.
        con.execute(
            "UPDATE quarantine.record SET released_at = ? WHERE released_at IS NULL AND suite <> 'raw_ingest' "
            "AND record_key IN (SELECT nct_id FROM stage.ctgov_study) AND run_id <> ?",
            [now, run_id],
        )
        quarantined = con.execute("SELECT count(*) FROM quarantine.record WHERE run_id = ?", [run_id]).fetchone()[0]
        counts = table_counts(con)
        con.execute(
            "INSERT OR REPLACE INTO meta.load_log VALUES (?, ?, ?, ?, ?, ?)",
            [run_id, now, studies, quarantined, json.dumps(counts), json.dumps(suites_passed)],
        )
        # The batch is published: its staging rows are spent (they stay behind only when a gate blocks).
        con.execute("DELETE FROM stage.ctgov_study")
        con.execute("DELETE FROM stage.ctgov_candidate")
        con.execute("DROP SCHEMA IF EXISTS stage_fhir CASCADE")
        con.execute("DROP SCHEMA IF EXISTS stage_omop CASCADE")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    # Checkpointed here, with what the deletes pinned already paid for, rather than by the next
    # connection: at 600,000 studies the next one's checkpoint needed as much again.
    con.execute("CHECKPOINT")
    return {"run_id": run_id, "studies_published": studies, "quarantined": quarantined,
            "merged": merged, "table_counts": counts}
