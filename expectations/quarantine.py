"""Writing gate outcomes: quarantined records and per-rule results of a run."""
from __future__ import annotations

import json

import pandas as pd

from expectations.runtime import SuiteResult, now_utc

QUARANTINE_COLUMNS = ["run_id", "quarantined_at", "source_file", "record_key", "source_record",
                      "suite", "rule", "field", "reason", "payload"]
_AS_RECORD = ", ".join(QUARANTINE_COLUMNS) + ", CAST(NULL AS TIMESTAMP) AS released_at"  # quarantine.record's order


def write_quarantine(con, rows: list[dict]) -> int:
    if not rows:
        return 0
    df = pd.DataFrame([{c: r.get(c) for c in QUARANTINE_COLUMNS} for r in rows], columns=QUARANTINE_COLUMNS)
    # A relation, not a registered view: the FHIR stage writes here inside its one transaction, which
    # would keep a dropped view's frame, payloads and all, until its commit (see fhir.store).
    con.from_df(df).project(_AS_RECORD).insert_into("quarantine.record")
    return len(df)


def write_rule_results(con, run_id: str, result: SuiteResult, reasons: dict[str, list[str]],
                       extra: list[tuple] = ()) -> None:
    """One row per rule; `reasons` maps rule id -> readable reasons of its failures.

    `extra`: (rule id, level, field, evaluated[, failed]) of checks made outside great-expectations
    (e.g. FHIR resource validation), whose failures are the reasons listed under their id unless
    `failed` counts them (when only a few are listed).
    """
    con.execute("DELETE FROM quarantine.rule_result WHERE run_id = ? AND suite = ?", [run_id, result.suite])
    rows = [(run_id, result.suite, rid, level, fld, n, rest[0] if rest else len(reasons.get(rid, [])),
             json.dumps(reasons.get(rid, [])[:5]), result.docs_path) for rid, level, fld, n, *rest in extra]
    rows += [
        (run_id, result.suite, r.rule.id, r.rule.level, r.rule.field, r.evaluated,
         len(reasons.get(r.rule.id, [])) or (0 if r.success else max(1, len(r.unexpected))),
         json.dumps(reasons.get(r.rule.id, [])[:5]), result.docs_path)
        for r in result.results
    ]
    con.executemany("INSERT INTO quarantine.rule_result VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def mark_state(con, pairs: list[tuple[str, str]], status: str, run_id: str) -> None:
    if not pairs:
        return
    now = now_utc()
    con.executemany(
        "INSERT OR REPLACE INTO meta.study_state VALUES (?, ?, ?, ?, ?)",
        [(nct, h, status, run_id, now) for nct, h in pairs],
    )
