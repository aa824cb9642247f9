"""`trialhouse quarantine list | retry`: what the gate holds back and why, and letting it try again."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb

from trialhouse.settings import Settings, duckdb_storage_config
from trialhouse.snapshot import work_path
from trialhouse.workfile import connect_work

# NULL parameters mean "any": one fixed statement serves every filter, values stay parameters.
HELD_FILTER = ("released_at IS NULL AND (?::VARCHAR[] IS NULL OR record_key IN (SELECT unnest(?::VARCHAR[]))) "
               "AND (?::VARCHAR IS NULL OR rule = ?)")
HELD_SQL = ("SELECT quarantined_at, suite, rule, record_key, source_file, source_record, field, reason, run_id "
            "FROM quarantine.record WHERE " + HELD_FILTER + " ORDER BY quarantined_at DESC, record_key, rule")


def _open_for_reading(settings: Settings) -> tuple[duckdb.DuckDBPyConnection, str]:
    """The work database is the newest truth; while a load holds it, the published copy answers."""
    work = work_path(settings.warehouse)
    if work.exists():
        try:
            return duckdb.connect(str(work), read_only=True), str(work)
        except duckdb.IOException:
            pass
    if not Path(settings.warehouse).exists():
        raise SystemExit(f"no warehouse at {settings.warehouse}: run `trialhouse run` first")
    return duckdb.connect(settings.warehouse, read_only=True), settings.warehouse


def _filter(nct_ids: list[str] | None, rule: str | None) -> list:
    return [nct_ids or None, nct_ids or None, rule, rule]


# Files that could not be read at all (not JSON, a zip cut short) and are still what lies at their path:
# `retry` re-reads them, so `list` shows them, with the error that names file, record and field.
FAILED_FILES_SQL = ("SELECT f.first_seen, f.path, f.error, f.run_id FROM raw.landed_file f "
                    "JOIN raw.landing_path p ON p.sha256 = f.sha256 AND p.path = f.path "
                    "WHERE f.status = 'failed' ORDER BY f.first_seen DESC, f.path")


def failed_files(settings: Settings) -> list[dict]:
    """Landed files that failed to read, as rows shaped like held records (suite raw_ingest, rule
    file_readable, no record key): a file is held whole when no record in it can be read."""
    con, _ = _open_for_reading(settings)
    with con:
        return [{"quarantined_at": at, "suite": "raw_ingest", "rule": "file_readable", "record_key": None,
                 "source_file": path, "source_record": None, "field": None, "reason": error, "run_id": run_id}
                for at, path, error, run_id in con.execute(FAILED_FILES_SQL).fetchall()]


def held(settings: Settings, nct_ids: list[str] | None = None, rule: str | None = None) -> list[dict]:
    """Held records, newest first; only these studies and this rule when given (as `release` takes them)."""
    con, _ = _open_for_reading(settings)
    with con:
        cols = ["quarantined_at", "suite", "rule", "record_key", "source_file", "source_record", "field", "reason", "run_id"]
        return [dict(zip(cols, r)) for r in con.execute(HELD_SQL, _filter(nct_ids, rule)).fetchall()]


def print_list(settings: Settings, as_json: bool, nct_ids: list[str] | None = None, rule: str | None = None) -> int:
    rows = held(settings, nct_ids, rule)
    if not nct_ids and rule in (None, "file_readable"):  # a failed file has no study to narrow to
        rows += failed_files(settings)
    if as_json:
        print(json.dumps(rows, default=str))
        return 0
    if not rows:
        narrowed = [f"--nct {n}" for n in nct_ids or []] + ([f"--rule {rule}"] if rule else [])
        print(f"nothing held in quarantine matches {' '.join(narrowed)}" if narrowed else "nothing is held in quarantine")
        return 0
    print(f"{len(rows)} quarantined record(s) or file(s):")
    for r in rows:
        # "$" keys a record that is its whole file: the file says more
        head = r["record_key"] if r["record_key"] not in (None, "$") else r["source_file"]
        print(f"- {head}  [{r['suite']}/{r['rule']}]  {r['quarantined_at']:%Y-%m-%d %H:%M}")
        print(f"    {r['reason']}")
    return 0


SELECT_KEYS = "SELECT DISTINCT record_key FROM quarantine.record WHERE " + HELD_FILTER
SELECT_RAW_FILES = ("SELECT DISTINCT p.sha256 FROM raw.landing_path p JOIN quarantine.record q ON q.source_file = p.path "
                    "WHERE q.suite = 'raw_ingest' AND q.record_key IN (SELECT unnest(?::VARCHAR[]))")
MARK_RELEASED = "UPDATE quarantine.record SET released_at = ? WHERE " + HELD_FILTER


def release(settings: Settings, nct_ids: list[str] | None = None, rule: str | None = None) -> dict:
    """Let held records be tried again by the next run: their study versions re-enter the batch, and
    files that failed or held unkeyable records are re-read from the landing folder."""
    work = work_path(settings.warehouse)
    if not work.exists():
        raise SystemExit(f"no work database at {work}: nothing to retry")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    filt = _filter(nct_ids, rule)
    with connect_work(work, duckdb_storage_config()) as con:
        con.execute("BEGIN TRANSACTION")
        keys = [r[0] for r in con.execute(SELECT_KEYS, filt).fetchall()]
        states = con.execute(
            "DELETE FROM meta.study_state WHERE status = 'quarantined' AND nct_id IN (SELECT unnest(?::VARCHAR[]))", [keys]
        ).fetchone()[0]
        shas = [r[0] for r in con.execute(SELECT_RAW_FILES, [keys]).fetchall()]
        # failed files still at their path are read again; those since replaced there just go
        files = con.execute("SELECT count(*) FROM (" + FAILED_FILES_SQL + ")").fetchone()[0]
        files += con.execute(
            "DELETE FROM raw.landed_file WHERE status <> 'failed' AND sha256 IN (SELECT unnest(?::VARCHAR[]))", [shas]
        ).fetchone()[0]
        con.execute("DELETE FROM raw.landed_file WHERE status = 'failed'")
        con.execute(MARK_RELEASED, [now, *filt])
        con.execute("COMMIT")
    return {"records_released": len(keys), "study_versions_retried": states, "files_reread": files}
