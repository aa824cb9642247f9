"""Assembles every asset, check, sensor and resource of TrialHouse into one Definitions."""

import dagster as dg

from orchestration.ctgov.assets import ctgov_study_version
from orchestration.quality.publish import published_warehouse
from orchestration.quality.registry import ctgov_registry_gate, stage_ctgov_study
from orchestration.resources import build_resources
from orchestration.sensors import landing_sensor
from trialhouse.settings import Settings

ALL_ASSETS = [ctgov_study_version, stage_ctgov_study, published_warehouse]
ALL_CHECKS = [ctgov_registry_gate]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    # In-process executor: one process per run, so great-expectations is imported once per run.
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        sensors=[landing_sensor],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
