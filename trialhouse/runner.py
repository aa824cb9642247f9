"""Runs the Dagster asset graph in-process: the command line and the UI share one code path."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import dagster as dg

from trialhouse.settings import Settings


@dataclass
class RunReport:
    run_id: str
    success: bool
    metadata: dict[str, dict] = field(default_factory=dict)  # asset key -> materialization metadata
    checks: dict[str, dict] = field(default_factory=dict)  # check name -> {"passed", "severity", "metadata"}
    failures: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)  # step key -> wall time, in run order
    step_windows: dict[str, list[float]] = field(default_factory=dict)  # step key -> [start, end], epoch seconds

    def value(self, asset: str, key: str, default=0):
        return self.metadata.get(asset, {}).get(key, default)


def _instance() -> dg.DagsterInstance:
    # With DAGSTER_HOME set, command-line runs are recorded where `dg dev` shows them.
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def _root_message(err) -> str:
    """The user's error, not Dagster's wrapper around it."""
    if err is None:
        return "failed"
    while getattr(err, "cause", None) is not None:
        err = err.cause
    return err.message.strip()


# Errors of a run as a whole, by where they arose.
_RUN_ERRORS = {dg.DagsterEventType.RESOURCE_INIT_FAILURE: "resources", dg.DagsterEventType.RUN_FAILURE: "run"}


def _plain(value):
    return getattr(value, "value", value)


def run_pipeline(settings: Settings, selection: str | None = None, log_level: str = "WARNING") -> RunReport:
    """Materialise every asset (or `selection`) and collect what each reported."""
    from orchestration.definitions import build_definitions

    defs = build_definitions(settings)
    job = defs.resolve_job_def("pipeline")
    if selection:
        job = job.get_subset(asset_selection={dg.AssetKey.from_user_string(selection)})
    with _instance() as instance:
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
        report = RunReport(run_id=result.run_id, success=result.success)
        run_errors: list[str] = []
        for event in result.all_events:
            if event.is_step_materialization:
                mat = event.step_materialization_data.materialization
                report.metadata[mat.asset_key.to_user_string()] = {
                    k: _plain(v) for k, v in mat.metadata.items()
                }
            elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                ev = event.event_specific_data
                report.checks[f"{ev.asset_key.to_user_string()}:{ev.check_name}"] = {
                    "passed": ev.passed,
                    "severity": ev.severity.value,
                    "metadata": {k: _plain(v) for k, v in ev.metadata.items()},
                }
            elif event.is_step_failure:
                report.failures.append(f"{event.step_key}: {_root_message(event.step_failure_data.error)}")
            elif event.event_type in _RUN_ERRORS and getattr(event.event_specific_data, "error", None) is not None:
                run_errors.append(f"{_RUN_ERRORS[event.event_type]}: {_root_message(event.event_specific_data.error)}")
        # A run that failed before any step (its resources: the run lock, the warehouse's path) said
        # only FAILED: the reason was in Dagster's stack trace on stderr. The first such error is the cause.
        if not result.success and not report.failures and run_errors:
            report.failures.append(run_errors[0])
        report.step_windows = _step_windows(instance, result.run_id)
        report.step_seconds = {k: round(end - start, 3) for k, (start, end) in report.step_windows.items()}
    return report


def _step_windows(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[float]]:
    """When each step started and ended, from the run's event log (what the UI's Gantt chart shows)."""
    started: dict[str, float] = {}
    windows: dict[str, list[float]] = {}
    ends = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)
    for entry in instance.all_logs(run_id):
        ev = entry.dagster_event
        if ev is None or not ev.step_key:
            continue
        if ev.event_type == dg.DagsterEventType.STEP_START:
            started[ev.step_key] = entry.timestamp
        elif ev.event_type in ends and ev.step_key in started:
            windows[ev.step_key] = [started[ev.step_key], entry.timestamp]
    return windows
