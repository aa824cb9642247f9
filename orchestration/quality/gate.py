"""What every gated staging asset shares: one great-expectations runner per run, Data Docs under the
export folder, and how a gate decision is shown on its blocking check."""
from pathlib import Path

import dagster as dg

from expectations.runtime import GxRunner, runner_for
from orchestration.resources import PathsResource


def docs_dir(paths: PathsResource, run_id: str) -> Path:
    return paths.export_path / "data_docs" / run_id


def gx_runner(context, paths: PathsResource) -> GxRunner:
    """The run's runner: GX is imported and its context built once per run, whatever the asset."""
    run_id = context.run.run_id
    return runner_for(run_id, docs_dir(paths, run_id))


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
            "data_docs": dg.MetadataValue.path(d.docs_path or ""),
        },
    )
