"""Publishing a gated batch: one DuckDB transaction moves staged rows into the published schemas.

Everything between BEGIN and COMMIT either lands together or not at all: a crash, a failed merge
or a killed process leaves the published schemas (and meta.study_state) exactly as they were, and
the batch is staged again by the next run because its study versions are still undecided.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

import duckdb

from schemas import apply_sql
from schemas.omop.spec import quote
from trialhouse.settings import WAREHOUSE_ROW_GROUP

# Tables whose row counts are recorded in meta.load_log (schema-qualified; identifiers from code).
Merge = Callable[[object, str], dict[str, int]]  # (con, run_id) -> {table: rows merged}


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


# DuckDB holds ~0.3 MiB for every row group a transaction deletes or updates rows in, until it commits,
# and can neither evict nor spill it (DuckDB 1.5 and 2.0, measured: one row deleted in each of 879 row
# groups of 8,192 rows held 242 MiB; in each of 59 groups of 122,880, 20 MiB). The work file's row groups
# are small (trialhouse.workfile), so a batch spread over a big warehouse touches thousands: a day's
# update of 6,000 studies on 600,000 ran the publish out of its 512 MB in the OMOP merge. The margin
# over 0.3 MiB covers row groups left part-filled by earlier publishes (omop.metadata at 600,000: 1,320
# groups for 1,246 full ones' rows).
UNDO_BYTES_PER_ROW_GROUP = 384 * 1024
# Published tables a publish deletes from or updates, each with the staged table whose rows replace
# (or mark) its rows: a row group is touched only if one of them lands there. OMOP tables pair by name.
_REPLACED_BY = {("fhir", "resource"): ("stage_fhir", "resource"), ("meta", "study_state"): ("stage", "ctgov_study"),
                ("quarantine", "record"): ("stage", "ctgov_study")}
_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "KB": 10**3, "MB": 10**6, "GB": 10**9,
          "TB": 10**12}


def undo_headroom(con, row_group_size: int = WAREHOUSE_ROW_GROUP) -> int:
    """Bytes of memory the batch's deletes and updates may pin until the commit: for each published
    table, its row groups, or the staged rows replacing its rows when they are fewer."""
    sizes = {(s, t): n or 0 for s, t, n in con.execute(
        "SELECT schema_name, table_name, estimated_size FROM duckdb_tables() "
        "WHERE schema_name IN ('fhir', 'omop', 'meta', 'quarantine', 'stage', 'stage_fhir', 'stage_omop')").fetchall()}
    touched = 0
    for (schema, table), rows in sizes.items():
        source = _REPLACED_BY.get((schema, table)) or (("stage_omop", table) if schema == "omop" else None)
        if source in sizes:
            touched += min(math.ceil(rows / row_group_size), sizes[source])
    return touched * UNDO_BYTES_PER_ROW_GROUP


def _limit_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]+)\s*", text)
    if not m or m.group(2) not in _UNITS:
        raise ValueError(f"DuckDB memory_limit {text!r} is not in a unit this knows")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


@contextmanager
def memory_headroom(con, extra: int) -> Iterator[None]:
    """DuckDB's memory limit raised by `extra` bytes for the block, then put back as it was if what
    the block pinned allows (else for the rest of the connection)."""
    before = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    if extra <= 0:
        yield
        return
    con.execute("SET memory_limit = ?", [f"{_limit_bytes(before) + int(extra)}B"])
    try:
        yield
    finally:
        try:
            con.execute("SET memory_limit = ?", [before])
        except duckdb.OutOfMemoryException:
            # What a committed delete pinned stays for the connection's life (a checkpoint frees none of
            # it: 937 MiB before and after, 600,000 studies), so the limit stays raised until it closes.
            pass


def publish_batch(con, run_id: str, suites_passed: list[str], merges: list[Merge]) -> dict:
    """Merge the staged batch and record it; returns what the load log says.

    DuckDB's memory limit is raised by what the batch's deletes may pin (undo_headroom) for the
    transaction: bounded by the published tables' row groups, so by the warehouse, and ~0 for a full
    load into empty tables or a one-study update."""
    apply_sql(con, "meta/meta.sql")
    with memory_headroom(con, undo_headroom(con)):
        return _publish(con, run_id, suites_passed, merges)


def _publish(con, run_id: str, suites_passed: list[str], merges: list[Merge]) -> dict:
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
    return {"run_id": run_id, "studies_published": studies, "quarantined": quarantined,
            "merged": merged, "table_counts": counts}
