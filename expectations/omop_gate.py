"""Stage the batch's OMOP rows and validate them with suite `omop_dqd` (generated from the DQD catalog).

OMOP rows are derived from records the registry suite already accepted, so a failure here is a
mapping or vocabulary fault rather than one bad record: every rule is batch-level and blocks the
publish, with the failing rows as examples.
"""
from __future__ import annotations

from dataclasses import dataclass

from expectations.quarantine import write_rule_results
from expectations.runtime import GxRunner, SuiteResult
from expectations.suites.omop_dqd import SUITE, rules, staged_frames
from schemas.omop.ddl import create_omop_schema
from schemas.omop.spec import cdm_tables
from transforms.omop.publish import primary_keys, staged_tables
from transforms.omop.trials import map_trials

STAGE = "stage_omop"
PUBLISHED = "omop"


@dataclass
class OmopStageResult:
    counts: dict[str, int]
    suite: SuiteResult


def reset_stage(con) -> None:
    con.execute("DROP SCHEMA IF EXISTS stage_omop CASCADE")
    create_omop_schema(con, STAGE)


def validate_stage(con, runner: GxRunner, run_id: str) -> SuiteResult:
    tables = staged_tables(con, STAGE)
    spec = {t.name: [f.name for f in t.fields] for t in cdm_tables().values()}
    frames = staged_frames(con, STAGE, tables)
    keys = sorted(set(primary_keys().values()))
    result = runner.validate(SUITE, rules(con, STAGE, PUBLISHED, tables, spec), frames, key_columns=keys)
    reasons = {}
    for rr in result.failures():
        reasons[rr.rule.id] = [f"{rr.rule.field}: {_row(row)} {rr.rule.message}" for row in rr.unexpected[:20]] or [
            f"{rr.rule.field}: {rr.rule.message}"]
    write_rule_results(con, run_id, result, reasons)
    return result


def _row(row: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items())


def stage_trials(con, runner: GxRunner, run_id: str) -> OmopStageResult:
    create_omop_schema(con, PUBLISHED)
    reset_stage(con)
    counts = map_trials(con, source="stage.ctgov_study", schema=STAGE, vocab_schema=PUBLISHED)
    return OmopStageResult(counts, validate_stage(con, runner, run_id))
