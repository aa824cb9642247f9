"""Assembles every asset, check, sensor and resource of TrialHouse into one Definitions."""

import dagster as dg

from orchestration.ctgov.assets import ctgov_study_version
from orchestration.quality.publish import published_warehouse
from orchestration.resources import build_resources
from trialhouse.settings import Settings

ALL_ASSETS = [ctgov_study_version, published_warehouse]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    return dg.Definitions(assets=ALL_ASSETS, resources=build_resources(settings))


defs = build_definitions()
