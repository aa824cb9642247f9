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


def held(settings: Settings, nct_ids: list[str] | None = None, rule: str | None = None) -> list[dict]:
    """Held records, newest first; only these studies and this rule when given (as `release` takes them)."""
    con, _ = _open_for_reading(settings)
    with con:
        cols = ["quarantined_at", "suite", "rule", "record_key", "source_file", "source_record", "field", "reason", "run_id"]
        return [dict(zip(cols, r)) for r in con.execute(HELD_SQL, _filter(nct_ids, rule)).fetchall()]


def print_list(settings: Settings, as_json: bool, nct_ids: list[str] | None = None, rule: str | None = None) -> int:
    rows = held(settings, nct_ids, rule)
    if as_json:
        print(json.dumps(rows, default=str))
        return 0
    if not rows:
        narrowed = [f"--nct {n}" for n in nct_ids or []] + ([f"--rule {rule}"] if rule else [])
        print(f"nothing held in quarantine matches {' '.join(narrowed)}" if narrowed else "nothing is held in quarantine")
        return 0
    print(f"{len(rows)} quarantined record(s):")
    for r in rows:
        print(f"- {r['record_key']}  [{r['suite']}/{r['rule']}]  {r['quarantined_at']:%Y-%m-%d %H:%M}")
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
        files = con.execute(
            "DELETE FROM raw.landed_file WHERE status = 'failed' OR sha256 IN (SELECT unnest(?::VARCHAR[]))", [shas]
        ).fetchone()[0]
        con.execute(MARK_RELEASED, [now, *filt])
        con.execute("COMMIT")
    return {"records_released": len(keys), "study_versions_retried": states, "files_reread": files}
