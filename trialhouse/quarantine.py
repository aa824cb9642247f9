"""`trialhouse quarantine list | retry`: what the gate holds back and why, and letting it try again."""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import duckdb

from trialhouse.settings import Settings, duckdb_storage_config
from trialhouse.snapshot import work_path
from trialhouse.workfile import connect_work

# NULL parameters mean "any": one fixed statement serves every filter, values stay parameters.
# A study narrows to its registry records and to its site deliveries' (their keys are the delivery id,
# or "<delivery id>/<USUBJID>"); a rule may be given as the list shows it, "<suite>/<rule>".
HELD_FILTER = ("released_at IS NULL AND (?::VARCHAR[] IS NULL OR record_key IN (SELECT unnest(?::VARCHAR[])) "
               "OR split_part(record_key, '/', 1) IN (SELECT unnest(?::VARCHAR[]))) "
               "AND (?::VARCHAR IS NULL OR rule = ?) AND (?::VARCHAR IS NULL OR suite = ?)")
# transforms.ctgov.ingest.QUARANTINE_SUITE: its record keys are the study a record names, else its place in its file
RAW_SUITE = "raw_ingest"
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


def _filter(con, nct_ids: list[str] | None, rule: str | None) -> list:
    suite, rule = rule.split("/", 1) if rule and "/" in rule else (None, rule)
    deliveries: list[str] = []
    if nct_ids and con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'raw' "
                               "AND table_name = 'site_delivery'").fetchone()[0]:
        deliveries = [r[0] for r in con.execute("SELECT DISTINCT delivery_id FROM raw.site_delivery "
                                                "WHERE nct_id IN (SELECT unnest(?::VARCHAR[]))", [nct_ids]).fetchall()]
    return [nct_ids or None, nct_ids or None, deliveries, rule, rule, suite, suite]


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
        rows = con.execute(FAILED_FILES_SQL).fetchall()
    # A file deleted since stays the last content seen at its path (no run records a path's going): it
    # was listed until a retry, though nothing is left to read or to fix (a newcomer's walkthrough).
    landing = Path(settings.landing)
    return [{"quarantined_at": at, "suite": "raw_ingest", "rule": "file_readable", "record_key": None,
             "source_file": path, "source_record": None, "field": None, "reason": error, "run_id": run_id}
            for at, path, error, run_id in rows if os.path.lexists(landing / path)]


def held(settings: Settings, nct_ids: list[str] | None = None, rule: str | None = None) -> list[dict]:
    """Held records, newest first; only these studies and this rule when given (as `release` takes them)."""
    con, _ = _open_for_reading(settings)
    with con:
        cols = ["quarantined_at", "suite", "rule", "record_key", "source_file", "source_record", "field", "reason", "run_id"]
        return [dict(zip(cols, r)) for r in con.execute(HELD_SQL, _filter(con, nct_ids, rule)).fetchall()]


def print_list(settings: Settings, as_json: bool, nct_ids: list[str] | None = None, rule: str | None = None) -> int:
    rows = held(settings, nct_ids, rule)
    if not nct_ids and rule in (None, "file_readable", "raw_ingest/file_readable"):  # no study to narrow to
        rows += failed_files(settings)
    if as_json:
        print(json.dumps(rows, default=str))
        return 0
    if not rows:
        narrowed = [f"--nct {n}" for n in nct_ids or []] + ([f"--rule {rule}"] if rule else [])
        print(f"nothing held in quarantine matches {' '.join(narrowed)}" if narrowed else "nothing is held in quarantine")
        return 0
    # One entry per held record and rule: a participant held whole is a row per SDTM row of theirs
    # (82 entries for one participant read as 82 problems); its reason is the row that broke the rule.
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((_head(r), r["suite"], r["rule"]), []).append(r)
    # Records as the run's summary counts them (`quarantined`); a record broken two ways is two entries.
    records = len({head for head, _, _ in groups})
    detail = [f"{len(groups)} entries, one per record and rule"] if len(groups) > records else []
    detail += [f"{len(rows)} rows of quarantine.record"] if len(rows) > len(groups) else []
    print(f"{records} held record(s) or file(s)" + (f" ({'; '.join(detail)})" if detail else "") + ":")
    for (head, suite, rule_id), members in groups.items():
        root = next((r for r in members if " held with participant " not in r["reason"]), members[0])
        more = f"  ({len(members)} rows)" if len(members) > 1 else ""
        print(f"- {head}  [{suite}/{rule_id}]  {members[0]['quarantined_at']:%Y-%m-%d %H:%M}{more}")
        print(f"    {root['reason']}")
        if suite == "site_contract" and not _delivery_folder(settings, root["source_file"]).is_dir():
            print("    (its folder is gone from the landing folder: `trialhouse quarantine retry` releases it)")
    return 0


def _delivery_folder(settings: Settings, source_file: str) -> Path:
    """The landing folder of a site delivery's file (`sites/<delivery>/...`), as CONTRACT_HELD reads it."""
    parts = (source_file or "").split("/")
    return Path(settings.landing) / "sites" / (parts[1] if len(parts) > 1 else "")


def _head(row: dict) -> str:
    """A held record as the list names it. "$" keys a record that is its whole file: the file says more.
    Raw ingest's holds are records of a file (keyed by the study they name, else by their place in the
    file: `[1]`, `studies[1]`, a zip member): the key alone named, and merged, the records at that place
    of every file (a review)."""
    if row["record_key"] in (None, "$"):
        return row["source_file"]
    if row["suite"] == RAW_SUITE:
        return f"{row['source_file']} record {row['record_key']}"
    return row["record_key"]


# A delivery held by the site contract is decided by its folder's state (transforms/sites/ingest.py): a
# retry cannot decide it again, so its holds stay until the folder changes. Released, they said nothing
# was held while the delivery still was...
RELEASABLE = " AND suite <> 'site_contract'"
# A record as `list` counts it: its key, or for a path held whole (key '$': a file or folder with
# nothing to read, a file's one unkeyable record) its path; raw ingest's holds are records of their file.
SELECT_KEYS = ("SELECT DISTINCT record_key, suite, CASE WHEN record_key = '$' OR suite = 'raw_ingest' THEN source_file END "
               "FROM quarantine.record WHERE " + HELD_FILTER + RELEASABLE)
CONTRACT_HELD = ("SELECT DISTINCT split_part(source_file, '/', 2) FROM quarantine.record "
                 "WHERE suite = 'site_contract' AND " + HELD_FILTER)
# ...unless its folder is gone from the landing folder: then nothing will decide it again.
RELEASE_GONE = ("UPDATE quarantine.record SET released_at = ? WHERE suite = 'site_contract' "
                "AND split_part(source_file, '/', 2) IN (SELECT unnest(?::VARCHAR[])) AND " + HELD_FILTER)
# The landed files whose held records this retry releases, to be read again: its own rows, not every
# file with a record of the same key ('$' keys a file's unkeyable record and a path with nothing to read).
SELECT_RAW_FILES = ("SELECT DISTINCT p.sha256 FROM raw.landing_path p WHERE p.path IN (SELECT source_file "
                    "FROM quarantine.record WHERE suite = 'raw_ingest' AND rule <> 'file_readable' AND "
                    + HELD_FILTER + RELEASABLE + ")")
MARK_RELEASED = "UPDATE quarantine.record SET released_at = ? WHERE " + HELD_FILTER + RELEASABLE


def release(settings: Settings, nct_ids: list[str] | None = None, rule: str | None = None) -> dict:
    """Let held records be tried again by the next run: their study versions re-enter the batch, files
    that failed or held unkeyable records are re-read from the landing folder, and held participants
    are gated again (site data is otherwise gated only when deliveries or registry versions change)."""
    work = work_path(settings.warehouse)
    if not work.exists():
        raise SystemExit(f"no work database at {work}: nothing to retry")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with connect_work(work, duckdb_storage_config()) as con:
        filt = _filter(con, nct_ids, rule)
        con.execute("BEGIN TRANSACTION")
        found = con.execute(SELECT_KEYS, filt).fetchall()
        keys = sorted({k for k, suite, _ in found if suite != RAW_SUITE})  # raw ingest holds no study state
        folders = [r[0] for r in con.execute(CONTRACT_HELD, filt).fetchall()]
        gone = [f for f in folders if not (Path(settings.landing) / "sites" / f).is_dir()]
        kept = len(folders) - len(gone)
        states = con.execute(
            "DELETE FROM meta.study_state WHERE status = 'quarantined' AND nct_id IN (SELECT unnest(?::VARCHAR[]))", [keys]
        ).fetchone()[0]
        shas = [r[0] for r in con.execute(SELECT_RAW_FILES, filt).fetchall()]
        # failed files still at their path are read again; those since replaced there just go
        files = con.execute("SELECT count(*) FROM (" + FAILED_FILES_SQL + ")").fetchone()[0]
        files += con.execute(
            "DELETE FROM raw.landed_file WHERE status <> 'failed' AND sha256 IN (SELECT unnest(?::VARCHAR[]))", [shas]
        ).fetchone()[0]
        con.execute("DELETE FROM raw.landed_file WHERE status = 'failed'")
        rows = con.execute(MARK_RELEASED, [now, *filt]).fetchone()[0]
        rows += con.execute(RELEASE_GONE, [now, gone, *filt]).fetchone()[0]
        participants = len({k for k, suite, _ in found if suite == "site_protocol"})
        if participants:  # a published fingerprint no run computes: the next run gates the site data again
            con.execute("INSERT INTO meta.site_state VALUES ('released by quarantine retry', NULL, ?)", [now])
        con.execute("COMMIT")
    return {"records_released": len(found) + len(gone), "rows_released": rows, "study_versions_retried": states,
            "participants_regated": participants, "files_reread": files, "deliveries_kept": kept}
