"""Map the registry batch to FHIR R5, validate every resource, stage what passes.

A study whose record cannot be mapped, or any of whose resources fails validation, is quarantined
whole (never published half-made) with the failing field named, and leaves the batch: the OMOP
mapping that follows sees only studies that made it through here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from expectations.quarantine import mark_state, write_quarantine, write_rule_results
from expectations.runtime import GxRunner, SuiteResult, now_utc
from expectations.suites import fhir_staging
from transforms.fhir import MappingError, map_study
from transforms.fhir.store import create_fhir_schema, write_resources
from transforms.fhir.validate import validate_resources

STAGE = "stage_fhir"


@dataclass
class FhirStageResult:
    studies: int
    resources: int
    quarantined: int
    by_type: dict[str, int] = field(default_factory=dict)
    suite: SuiteResult | None = None


def _instant(date) -> str | None:
    return f"{date.isoformat()}T00:00:00Z" if date else None


def stage_fhir(con, runner: GxRunner, run_id: str) -> FhirStageResult:
    rows = con.execute(
        "SELECT nct_id, content_hash, version_seq, last_update_post_date, payload, source_file, source_record "
        "FROM stage.ctgov_study ORDER BY nct_id"
    ).fetchall()
    now = now_utc()
    held: dict[str, dict] = {}  # nct_id -> quarantine row
    mapped: list[dict] = []
    for nct_id, chash, seq, lupd, payload, src, rec in rows:
        base = {"run_id": run_id, "quarantined_at": now, "source_file": src, "record_key": nct_id,
                "source_record": rec, "suite": fhir_staging.SUITE, "payload": payload, "content_hash": chash}
        try:
            resources = map_study(json.loads(payload), version_id=str(seq), last_updated=_instant(lupd))
        except MappingError as exc:
            held[nct_id] = {**base, "rule": "mappable", "field": exc.field,
                            "reason": f"{src} record {nct_id}: {exc.field}: cannot be mapped to FHIR R5: {exc}"}
            continue
        problems = [p for ps in validate_resources(resources).values() for p in ps]
        if problems:
            held[nct_id] = {**base, "rule": "valid_resource", "field": problems[0].split(":", 1)[0],
                            "reason": f"{src} record {nct_id}: {len(problems)} FHIR validation problem(s): "
                                      + "; ".join(problems[:3])}
            continue
        mapped.append({"nct_id": nct_id, "source_file": src, "source_record": rec, "content_hash": chash,
                       "payload": payload, "resources": resources})

    frames, ids = fhir_staging.frames(mapped)
    result = runner.validate(fhir_staging.SUITE, fhir_staging.rules(ids, len(mapped)), frames,
                             key_columns=fhir_staging.KEYS + ["field"])
    by_nct = {m["nct_id"]: m for m in mapped}
    reasons: dict[str, list[str]] = {}
    for rr in result.failures():
        for row in rr.unexpected:
            text = (f"{row['source_file']} record {row['nct_id']}: {row['resource']} {row.get('field', '')} "
                    f"= {row.get(rr.rule.column)!r} {rr.rule.message}")
            reasons.setdefault(rr.rule.id, []).append(text)
            m = by_nct.get(row["nct_id"])
            if rr.rule.level == "record" and m and row["nct_id"] not in held:
                held[row["nct_id"]] = {"run_id": run_id, "quarantined_at": now, "source_file": m["source_file"],
                                       "record_key": m["nct_id"], "source_record": m["source_record"],
                                       "suite": fhir_staging.SUITE, "rule": rr.rule.id, "field": row.get("field"),
                                       "reason": text, "payload": m["payload"], "content_hash": m["content_hash"]}
    for rule_id in ("mappable", "valid_resource"):
        reasons[rule_id] = [h["reason"] for h in held.values() if h["rule"] == rule_id]
    write_quarantine(con, list(held.values()))
    write_rule_results(con, run_id, result, reasons, extra=[
        ("mappable", "record", "record", len(rows)),
        ("valid_resource", "record", "resource", len(rows)),
    ])
    mark_state(con, [(h["record_key"], h["content_hash"]) for h in held.values()], "quarantined", run_id)
    if held:
        con.execute("DELETE FROM stage.ctgov_study WHERE nct_id IN (SELECT unnest(?::VARCHAR[]))", [sorted(held)])

    con.execute("DROP SCHEMA IF EXISTS stage_fhir CASCADE")
    create_fhir_schema(con, STAGE)
    good = [r for m in mapped if m["nct_id"] not in held for r in m["resources"]]
    written = write_resources(con, STAGE, good, replace_studies=False)
    by_type = dict(con.execute("SELECT resource_type, count(*) FROM stage_fhir.resource GROUP BY ALL ORDER BY 1").fetchall())
    return FhirStageResult(len(mapped) - sum(1 for n in held if n in by_nct), written, len(held), by_type, result)
