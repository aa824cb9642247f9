"""The one place configuration comes from: environment variables with documented defaults.

Dagster resources and the command line both read these, so the UI and `trialhouse run` act on
the same files unless told otherwise.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ENV_WAREHOUSE = "TRIALHOUSE_WAREHOUSE"
ENV_LANDING = "TRIALHOUSE_LANDING"
ENV_EXPORT = "TRIALHOUSE_EXPORT"
ENV_VOCAB = "TRIALHOUSE_VOCAB"
ENV_CTGOV_BASE_URL = "TRIALHOUSE_CTGOV_BASE_URL"
ENV_CTGOV_MIN_INTERVAL = "TRIALHOUSE_CTGOV_MIN_INTERVAL"
ENV_PSEUDONYM_KEY = "TRIALHOUSE_PSEUDONYM_KEY"

# The documented demo key: it makes the demo and the tests reproducible, and protects nothing.
# Any real deployment sets TRIALHOUSE_PSEUDONYM_KEY (at least 16 bytes) and keeps it out of the warehouse.
DEMO_PSEUDONYM_KEY = "trialhouse-demo-pseudonym-key-not-secret"

DEFAULT_WAREHOUSE = "./data/warehouse.duckdb"
DEFAULT_LANDING = "./data/landing"
DEFAULT_EXPORT = "./data/exports"
DEFAULT_CTGOV_BASE_URL = "https://clinicaltrials.gov/api/v2"

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


class SettingError(ValueError):
    """An environment variable whose value the pipeline cannot use; the message names it."""


def _number(name: str, default, kind=int, low=None, high=None):
    """A numeric setting within [low, high]. `int('abc')` alone names neither the variable nor what it
    must be, and the step that read it failed mid-run; this names both (see setting_problems()). Out of
    range is an error too, not a value quietly clamped or taken: a negative share blocked every batch,
    NaN never blocked one, a negative Data Docs count kept all of them."""
    raw = os.environ.get(name)
    if not raw:
        return default
    what = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not {what} (unset it for the default, {default})") from None
    if value != value or (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            bounds = f"from {low} to {high}"
        else:
            bounds = f"at least {low}" if low is not None else f"at most {high}"
        raise SettingError(f"{name}={raw!r} must be {what} {bounds} (unset it for the default, {default})")
    return value


ENV_MAX_QUARANTINE_SHARE = "TRIALHOUSE_MAX_QUARANTINE_SHARE"
ENV_MIN_BATCH_FOR_SHARE = "TRIALHOUSE_MIN_BATCH_FOR_SHARE"
ENV_MIN_ROW_RATIO = "TRIALHOUSE_MIN_ROW_RATIO"


@dataclass(frozen=True)
class GateLimits:
    """Batch-level rules of the quality gate. A batch breaking one publishes nothing.

    max_quarantine_share: block when more than this share of a batch's records is quarantined
      (only for batches of at least min_batch_for_share records, so one bad file alone is
      quarantined rather than blocking).
    min_row_ratio: block when a table's published row count for the re-mapped studies would fall
      below this ratio of what was published for them before (a collapse, e.g. sites lost).
    """

    max_quarantine_share: float = 0.2
    min_batch_for_share: int = 20
    min_row_ratio: float = 0.5

    @classmethod
    def from_env(cls) -> "GateLimits":
        d = cls()
        return cls(
            max_quarantine_share=_number(ENV_MAX_QUARANTINE_SHARE, d.max_quarantine_share, float, 0.0, 1.0),
            min_batch_for_share=_number(ENV_MIN_BATCH_FOR_SHARE, d.min_batch_for_share, int, 1),
            min_row_ratio=_number(ENV_MIN_ROW_RATIO, d.min_row_ratio, float, 0.0, 1.0),
        )


ENV_STAGE_CHUNK = "TRIALHOUSE_STAGE_CHUNK"


def stage_chunk() -> int:
    """Studies mapped and validated at a time: memory stays flat in the size of the batch."""
    return _number(ENV_STAGE_CHUNK, 5000, int, 1)


def registry_chunk() -> int:
    """Studies the registry suite validates at a time: 4 x TRIALHOUSE_STAGE_CHUNK. Its frames keep only
    the fields its rules read (payloads stream through), and great-expectations costs ~2 s per chunk
    whatever the rows (building the metric graph of ~50 rules), so fewer, larger chunks."""
    return 4 * stage_chunk()


ENV_DUCKDB_MEMORY = "TRIALHOUSE_DUCKDB_MEMORY"


def duckdb_memory_limit() -> str:
    """DuckDB's buffer-pool cap for the pipeline's connection. DuckDB's own default is 80% of RAM,
    which it fills as a cache; capped, big statements spill to disk beside the work file instead.
    512 MB ran the 50,000- and 100,000-study benchmarks as fast as 1 GB and 0.5 GB smaller."""
    raw = os.environ.get(ENV_DUCKDB_MEMORY)
    if not raw:
        return "512MB"
    m = _MEMORY.match(raw)
    size = float(m.group(1)) * _UNITS[m.group(2).lower()] if m else None
    if size is None or size < _MIN_MEMORY:
        raise SettingError(f"{ENV_DUCKDB_MEMORY}={raw!r} must be a size such as 512MB or 1GB, at least 64MB "
                           "(DuckDB fails every step below that; unset it for the default, 512MB)")
    return raw.strip()


_MEMORY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_MIN_MEMORY = 64e6


def duckdb_storage_config() -> dict[str, str]:
    """Compress JSON text on disk. By default DuckDB stores strings over a few KB uncompressed and
    zstd-compresses none of them before storage format v1.2; the payloads and FHIR resources are
    most of the warehouse's bytes, and every publish copies or compares the whole file. Strings of
    256+ bytes (a FHIR resource averages ~1 KB) are zstd'd at checkpoint. Files made by an older
    format keep it: DuckDB reads both."""
    return {"storage_compatibility_version": "v1.2.0", "zstd_min_string_length": "256"}


# Rows per row group of the work file (DuckDB's default is 122,880). Every connection that writes it
# must attach it with this size (trialhouse.workfile): a checkpoint by one using another size merges
# or splits every table's row groups, rewriting the whole file.
WAREHOUSE_ROW_GROUP = 8192


ENV_DATA_DOCS_KEEP = "TRIALHOUSE_DATA_DOCS_KEEP"


def data_docs_keep() -> int:
    """Runs whose great-expectations Data Docs are kept under <export>/data_docs (the newest, the current
    run's included; 0 keeps all). Each run's site is ~5 MB, so without a bound they grow run by run."""
    return _number(ENV_DATA_DOCS_KEEP, 30, int, 0)


ENV_WORKERS = "TRIALHOUSE_WORKERS"


def stage_workers() -> int:
    """Processes that read a bulk zip, flatten registry records and map FHIR slices when there are
    several (default: one per core)."""
    return _number(ENV_WORKERS, os.cpu_count() or 1, int, 1)


def ctgov_base_url() -> str:
    return os.environ.get(ENV_CTGOV_BASE_URL) or DEFAULT_CTGOV_BASE_URL


def ctgov_min_interval() -> float:
    """Seconds between API requests: one a second unless told otherwise."""
    return _number(ENV_CTGOV_MIN_INTERVAL, 1.0, float, 0.0)


def pseudonym_key() -> tuple[bytes, bool]:
    """The HMAC key for participant pseudonyms, and whether it is the public demo key."""
    value = os.environ.get(ENV_PSEUDONYM_KEY)
    if value and len(value.encode("utf-8")) < MIN_PSEUDONYM_KEY_BYTES:
        raise SettingError(f"{ENV_PSEUDONYM_KEY} is {len(value.encode('utf-8'))} bytes long: a pseudonym key must be "
                           f"at least {MIN_PSEUDONYM_KEY_BYTES} (unset it for the public demo key)")
    return (value or DEMO_PSEUDONYM_KEY).encode("utf-8"), not value


MIN_PSEUDONYM_KEY_BYTES = 16  # what transforms.omop.participants.pseudonym requires (importing it here loads pandas)


def setting_problems() -> list[str]:
    """Every setting that must have a form read once, as readable lines: the commands check them before
    doing anything, so a mistyped value stops a run at its start instead of failing the step that first
    reads it (a short pseudonym key failed the site step and with it the whole publish)."""
    found = []
    for read in (GateLimits.from_env, stage_chunk, stage_workers, data_docs_keep, ctgov_min_interval,
                 duckdb_memory_limit, pseudonym_key):
        try:
            read()
        except SettingError as exc:
            found.append(str(exc))
    return found
