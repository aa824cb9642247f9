"""What every gated staging asset shares: one great-expectations runner per run, Data Docs under the
export folder, and how a gate decision is shown on its blocking check."""
from pathlib import Path

import dagster as dg

from expectations.data_docs import prune_data_docs
from expectations.runtime import GxRunner, runner_for
from orchestration.resources import PathsResource
from trialhouse.settings import ENV_DATA_DOCS_KEEP, data_docs_keep


def docs_dir(paths: PathsResource, run_id: str) -> Path:
    return paths.export_path / "data_docs" / run_id


def gx_runner(context, paths: PathsResource) -> GxRunner:
    """The run's runner: GX is imported and its context built once per run, whatever the asset. Older
    runs' Data Docs beyond TRIALHOUSE_DATA_DOCS_KEEP are removed here, before this run writes its own, and
    the kept runs' static assets share one copy."""
    run_id = context.run.run_id
    runner = runner_for(run_id, docs_dir(paths, run_id))
    removed, problems = prune_data_docs(paths.export_path / "data_docs", data_docs_keep(), current=run_id)
    if removed:
        context.log.info(f"Removed the Data Docs of {len(removed)} older run(s) ({ENV_DATA_DOCS_KEEP}={data_docs_keep()})")
    for problem in problems:
        context.log.warning(f"Data Docs housekeeping: {problem}")
    return runner


def gate_result(d, batch: int, held: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=d.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rules_run": dg.MetadataValue.int(d.rules_run),
            "batch_size": dg.MetadataValue.int(batch),
            "quarantined": dg.MetadataValue.int(held),
            "record_rule_failures": dg.MetadataValue.int(d.record_failures),
            "batch_rule_failures": dg.MetadataValue.md("\n".join(f"- {f}" for f in d.failures) or "none"),
            "examples": dg.MetadataValue.md("\n".join(f"- {e}" for e in d.examples[:10]) or "none"),
            "warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in d.warnings) or "none"),
            "data_docs": dg.MetadataValue.path(d.docs_path or ""),
        },
    )
