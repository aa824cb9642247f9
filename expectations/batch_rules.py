"""Batch-level rules: decide whether a staged batch may be published at all."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from trialhouse.settings import GateLimits


@dataclass
class GateDecision:
    passed: bool
    rules_run: int
    failures: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    record_failures: int = 0
    docs_path: str | None = None
    warnings: list[str] = field(default_factory=list)  # level 'warning': reported, never blocks


def decide(con, run_id: str, suite: str, limits: GateLimits, batch_size: int, quarantined: int) -> GateDecision:
    """Batch-level rule failures and the quarantine share, from quarantine.rule_result of the run; the
    share's verdict is written there too (rule SHARE_RULE), beside the suite's own rules: a run it
    blocked recorded no reason anywhere but the check's metadata."""
    rows = con.execute(
        "SELECT rule, level, failed, examples, docs_path FROM quarantine.rule_result WHERE run_id = ? AND suite = ?"
        " AND rule <> ?", [run_id, suite, SHARE_RULE],
    ).fetchall()
    d = GateDecision(passed=True, rules_run=len(rows) + 1)
    for rule, level, failed, examples, docs in rows:
        d.docs_path = d.docs_path or docs
        if not failed:
            continue
        shown = json.loads(examples or "[]")
        if level == "warning":
            d.warnings.append(f"{rule}: {failed} row(s), e.g. {shown[0] if shown else ''}")
            continue
        d.examples += shown[:2]
        if level == "batch":
            d.passed = False
            d.failures.append(f"{rule}: {failed} failure(s), e.g. {shown[0] if shown else ''}")
        else:
            d.record_failures += failed
    over = bool(batch_size and batch_size >= limits.min_batch_for_share
                and quarantined / batch_size > limits.max_quarantine_share)
    if over:
        d.passed = False
        d.failures.append(
            f"{SHARE_RULE}: {quarantined} of {batch_size} records ({quarantined / batch_size:.0%}) quarantined, "
            f"above the limit of {limits.max_quarantine_share:.0%} (TRIALHOUSE_MAX_QUARANTINE_SHARE)"
        )
    if batch_size:
        con.execute("DELETE FROM quarantine.rule_result WHERE run_id = ? AND suite = ? AND rule = ?",
                    [run_id, suite, SHARE_RULE])
        con.execute("INSERT INTO quarantine.rule_result VALUES (?, ?, ?, 'batch', NULL, ?, ?, ?, ?)",
                    [run_id, suite, SHARE_RULE, batch_size, quarantined if over else 0,
                     json.dumps([d.failures[-1]] if over else []), d.docs_path])
    return d


SHARE_RULE = "quarantine_share"
