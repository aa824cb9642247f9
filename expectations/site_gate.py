"""Stage the current site deliveries' participant data through suite `site_protocol`.

Follows registry_gate.py: frames from the rows (expectations/suites/site_protocol.py) -> great
expectations -> record-level failures to quarantine.record, rule outcomes to quarantine.rule_result.
What is held is written to `stage.site_row_excluded` (delivery_key, usubjid, domain, row_number, rule),
the `exclude` relation of `transforms.omop.participants.map_participants`; everything else maps.

Participant or row (`site_protocol.scope`):
* participant scope (eligibility age/sex, arm not in the registry, screening PHQ-9/BMI, rows whose
  USUBJID is not in DM): the finding disqualifies the person, so every row of that participant in that
  delivery is held; the offending row is quarantined under the rule with its field, each other row
  with reason "held with participant ...", so nothing leaves the pipeline silently.
* row scope (dose rule, infusion duration, dose without a weight): only that EX row is held; the
  participant's other data still map.
* level `warning` (enrolment above the registry target, a death dated earlier by another record than
  the date taken): recorded in rule_result and the run's warnings, never quarantines or blocks. The
  blocking asset check must treat level 'warning' as non-blocking.

Rows of studies without a registry record in `registry` cannot be checked: they are excluded (rule
`no_registry_record`) but not quarantined, and are checked on a later run that has the record.
Quarantine rows are written once per (source file, row, rule, payload) while unreleased, so running
the gate again over the same deliveries adds nothing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from expectations.quarantine import write_quarantine, write_rule_results
from expectations.runtime import GxRunner, SuiteResult, now_utc
from expectations.suites.site_protocol import DETAIL_COLUMNS, KEYS, PARTICIPANT, SUITE, build_frames, rules, scope, screening_limits
from schemas import ensure_base_schemas, ensure_site_schemas

EXCLUDED = "stage.site_row_excluded"
_ROWS_SQL = """
SELECT s.delivery_key, s.delivery_id, s.nct_id, s.site_id, upper(s.domain) AS domain, s.row_number, s.usubjid,
       s.record, d.folder
FROM raw.sdtm_row_current s JOIN raw.site_delivery d USING (delivery_key)
ORDER BY s.delivery_key, s.domain, s.row_number
"""


@dataclass
class SiteStageResult:
    rows: int                       # current SDTM rows looked at
    staged: int                     # rows left for mapping
    quarantined: int                # rows held: offending and held with their participant
    records_held: int               # participants with any row held: what `quarantine list` counts
    participants_held: list[str]    # 'delivery_id/USUBJID'
    rows_held: list[str]            # 'delivery_id/USUBJID/<domain> row <n>' held alone (row scope)
    unchecked: int                  # rows of studies without a registry record (excluded, not quarantined)
    warnings: list[str]
    suite: SuiteResult
    exclude: str = EXCLUDED
    reasons: dict[str, list[str]] = field(default_factory=dict)


def _registries(registry: dict) -> dict[str, dict]:
    """One API v2 record, or {nct_id: record}."""
    if "protocolSection" in registry:
        return {registry["protocolSection"]["identificationModule"]["nctId"]: registry}
    return dict(registry)


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    return round(value, 2) if isinstance(value, float) else value


def _reason(rule, row: dict, fld: str) -> str:
    value = row[rule.column] if rule.column in row else row["record"].get(rule.column)
    where = f"delivery {row['delivery_id']}, participant {row['usubjid']}, {row['domain']} row {row['row_number']}"
    text = f"{where}: {fld} = {_plain(value)!r} {rule.message} (rule {rule.id})"
    if rule.id == "protocol.dose_rule":
        text += f"; expected {row.get('expected')} mg for {row.get('weight')} kg"
    elif rule.id == "plausibility.after_death":
        text += f" ({row.get('expected')})"
    elif rule.id in ("eligibility.age_min", "eligibility.age_max"):
        text += f"; the registry admits {row.get('expected')}"
    elif rule.id == "plausibility.death_dates_agree":
        text += f": {row.get('expected')} is the date kept"
    return text


def stage_site_data(con, runner: GxRunner, run_id: str, registry: dict) -> SiteStageResult:
    ensure_base_schemas(con)
    ensure_site_schemas(con)
    registries = _registries(registry)
    rows = []
    for r in con.execute(_ROWS_SQL).fetchall():
        rows.append(dict(zip(("delivery_key", "delivery_id", "nct_id", "site_id", "domain", "row_number", "usubjid",
                              "payload", "folder"), r)))
    for r in rows:
        r["record"] = json.loads(r["payload"])
    checked = [r for r in rows if r["nct_id"] in registries]
    frames = build_frames(checked, {n: registries[n] for n in {r["nct_id"] for r in checked}})
    result = runner.validate(SUITE, rules(screening_limits(registries)), frames, key_columns=KEYS + DETAIL_COLUMNS)

    by_row = {(r["delivery_key"], r["domain"], r["row_number"]): r for r in checked}
    by_subject: dict[tuple, list[dict]] = {}
    for r in checked:
        by_subject.setdefault((r["delivery_key"], r["usubjid"]), []).append(r)
    reasons: dict[str, list[str]] = {}
    warnings: list[str] = []
    offending: list[tuple[dict, str, str, str]] = []  # row, rule id, field, reason
    held: dict[tuple, str] = {}  # row key -> rule that held it
    subjects: dict[tuple, tuple[str, str]] = {}  # (delivery_key, usubjid) -> first (rule, reason)
    for rr in result.results:
        if rr.success:
            continue
        for u in rr.unexpected:
            if rr.rule.level == "warning":
                if "delivery_key" in u:  # about a row: said like a hold's reason, nothing held
                    row = by_row[(u["delivery_key"], u["domain"], u["row_number"])]
                    text = (_reason(rr.rule, {**row, **u}, u.get("field") or rr.rule.field)
                            + "; a warning: this rule holds nothing")
                else:
                    text = (f"study {u.get('nct_id')}: {_plain(u.get('participants'))} participants in the current "
                            f"deliveries, registry target {_plain(u.get('target'))} ({rr.rule.id}, warning)")
                reasons.setdefault(rr.rule.id, []).append(text)
                warnings.append(text)
                continue
            row = by_row[(u["delivery_key"], u["domain"], u["row_number"])]
            fld = u.get("field") or rr.rule.field
            text = _reason(rr.rule, {**row, **u}, fld)
            reasons.setdefault(rr.rule.id, []).append(text)
            offending.append((row, rr.rule.id, fld, text))
            key = (row["delivery_key"], row["domain"], row["row_number"])
            held.setdefault(key, rr.rule.id)
            if scope(rr.rule.id) == PARTICIPANT:
                subjects.setdefault((row["delivery_key"], row["usubjid"]), (rr.rule.id, text))
    collateral = []
    for (dk, usubjid), (rule_id, why) in subjects.items():
        for r in by_subject.get((dk, usubjid), []):
            key = (dk, r["domain"], r["row_number"])
            if key not in held:
                held[key] = rule_id
                collateral.append((r, rule_id, f"{r['domain'].lower()}.*",
                                   f"delivery {r['delivery_id']}, participant {usubjid}, {r['domain']} row "
                                   f"{r['row_number']}: held with participant {usubjid} because {why}"))
    n_quarantined = _quarantine(con, run_id, offending + collateral)
    unchecked = [r for r in rows if r["nct_id"] not in registries]
    _write_excluded(con, [(k[0], by_row[k]["usubjid"], k[1], k[2], rule) for k, rule in held.items()]
                    + [(r["delivery_key"], r["usubjid"], r["domain"], r["row_number"], "no_registry_record") for r in unchecked])
    write_rule_results(con, run_id, result, reasons)
    row_only = sorted({f"{r['delivery_id']}/{r['usubjid']}/{r['domain']} row {r['row_number']}"
                       for r, rule, _, _ in offending if scope(rule) != PARTICIPANT
                       and (r["delivery_key"], r["usubjid"]) not in subjects})
    records_held = len(set(subjects) | {(r["delivery_key"], r["usubjid"]) for r, _, _, _ in offending})
    return SiteStageResult(
        rows=len(rows), staged=len(checked) - len(held), quarantined=n_quarantined, records_held=records_held,
        participants_held=sorted(f"{by_subject[k][0]['delivery_id']}/{k[1]}" for k in subjects),
        rows_held=row_only, unchecked=len(unchecked), warnings=warnings, suite=result, reasons=reasons)


def _quarantine(con, run_id: str, items: list[tuple[dict, str, str, str]]) -> int:
    """quarantine.record rows, skipping any still held from an earlier run (same file, row, rule, payload)."""
    existing = set(con.execute(
        "SELECT source_file, source_record, rule, payload FROM quarantine.record WHERE suite = ? AND released_at IS NULL",
        [SUITE]).fetchall())
    now = now_utc()
    out = []
    for row, rule, fld, text in items:
        source_file = f"{row['folder']}/{row['domain'].lower()}.csv"
        source_record = f"row {row['row_number']}"
        if (source_file, source_record, rule, row["payload"]) in existing:
            continue
        out.append({"run_id": run_id, "quarantined_at": now, "source_file": source_file,
                    "record_key": f"{row['delivery_id']}/{row['usubjid']}", "source_record": source_record,
                    "suite": SUITE, "rule": rule, "field": fld, "reason": text, "payload": row["payload"]})
    write_quarantine(con, out)
    return len(items)


def _write_excluded(con, rows: list[tuple]) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS stage")
    con.execute(f"CREATE OR REPLACE TABLE {EXCLUDED} (delivery_key BIGINT, usubjid VARCHAR, domain VARCHAR, "
                "row_number INTEGER, rule VARCHAR)")
    if rows:
        df = pd.DataFrame(rows, columns=["delivery_key", "usubjid", "domain", "row_number", "rule"])
        con.register("incoming_site_excluded", df)
        try:
            con.execute(f"INSERT INTO {EXCLUDED} SELECT * FROM incoming_site_excluded")
        finally:
            con.unregister("incoming_site_excluded")
