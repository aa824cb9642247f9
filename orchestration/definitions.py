"""Assembles every asset, check, sensor and resource of TrialHouse into one Definitions."""

import dagster as dg

from orchestration.ctgov.api_sync import ctgov_api_pages, ctgov_sync_job, ctgov_sync_schedule
from orchestration.ctgov.assets import ctgov_study_version
from orchestration.fhir.assets import fhir_staging_gate, stage_fhir_resource
from orchestration.omop.assets import omop_dqd_gate, omop_vocabulary, stage_omop
from orchestration.quality.publish import published_warehouse
from orchestration.quality.registry import ctgov_registry_gate, stage_ctgov_study
from orchestration.resources import build_resources
from orchestration.sensors import landing_sensor
from orchestration.sites.assets import site_delivery
from orchestration.sites.stage import site_protocol_gate, stage_site_data_asset
from trialhouse.settings import SettingError, Settings, setting_problems

ALL_ASSETS = [ctgov_api_pages, ctgov_study_version, stage_ctgov_study, stage_fhir_resource, omop_vocabulary,
              stage_omop, site_delivery, stage_site_data_asset, published_warehouse]
ALL_CHECKS = [ctgov_registry_gate, fhir_staging_gate, omop_dqd_gate, site_protocol_gate]

# What `trialhouse run` / `demo` materialise: everything but the network-bound API sync.
pipeline_job = dg.define_asset_job(
    "pipeline",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(ctgov_api_pages),
    description="One pass over the landing folder: raw ingestion, staging, the gate, publish.",
)

# Downstream assets follow raw by their automation conditions; this sensor evaluates them.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "trialhouse_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
)


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    # A mistyped numeric setting fails the code location's load, naming the variable, not a step mid-run.
    found = setting_problems()
    if found:
        raise SettingError("; ".join(found))
    # In-process executor: one process per run, so great-expectations is imported once per run.
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        sensors=[landing_sensor, automation_sensor],
        jobs=[pipeline_job, ctgov_sync_job],
        schedules=[ctgov_sync_schedule],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
