"""The one place configuration comes from: environment variables with documented defaults.

Dagster resources and the command line both read these, so the UI and `trialhouse run` act on
the same files unless told otherwise.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_WAREHOUSE = "TRIALHOUSE_WAREHOUSE"
ENV_LANDING = "TRIALHOUSE_LANDING"
ENV_EXPORT = "TRIALHOUSE_EXPORT"
ENV_VOCAB = "TRIALHOUSE_VOCAB"

DEFAULT_WAREHOUSE = "./data/warehouse.duckdb"
DEFAULT_LANDING = "./data/landing"
DEFAULT_EXPORT = "./data/exports"

# Where the bundled demo landing set lives (copied real registry records).
SAMPLE_LANDING = Path(__file__).resolve().parent / "sample" / "landing"


@dataclass(frozen=True)
class Settings:
    warehouse: str
    landing: str
    export: str
    vocab: str | None  # None: the bundled demo vocabulary

    @classmethod
    def from_env(cls, **overrides: str | None) -> "Settings":
        values = {
            "warehouse": os.environ.get(ENV_WAREHOUSE) or DEFAULT_WAREHOUSE,
            "landing": os.environ.get(ENV_LANDING) or DEFAULT_LANDING,
            "export": os.environ.get(ENV_EXPORT) or DEFAULT_EXPORT,
            "vocab": os.environ.get(ENV_VOCAB) or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
