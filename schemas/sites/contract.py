"""The site delivery contract (CONTRACT.md): one JSON Schema for the manifest and one per CSV file.

CSV schemas describe one row as an object of strings, the way a CSV reader sees it; an empty cell
counts as absent, so `required` means "present and non-empty". Property order is the canonical
column order (the generator writes it). Two custom formats check what a pattern cannot: that a
partial ISO 8601 date is a real calendar date, and coordinate ranges.
"""
from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache
from pathlib import Path

import jsonschema_rs

HERE = Path(__file__).resolve().parent
CONTRACT_VERSION = "1.0"
DOMAINS = ("dm", "ds", "sv", "ex", "vs", "qs", "ae")  # SDTM domain files, in load order
CSV_KINDS = ("sites",) + DOMAINS
FILE_NAMES = tuple(f"{k}.csv" for k in CSV_KINDS)


def is_sdtm_dtc(value: str) -> bool:
    """Pattern-valid ISO 8601 strings can still name 2025-02-30; reject those."""
    if len(value) < 10:
        return True  # YYYY or YYYY-MM: the pattern already bounds the month
    try:
        dt.date.fromisoformat(value[:10])
    except ValueError:
        return False
    return True


def _in_range(limit: float):
    def check(value: str) -> bool:
        try:
            return -limit <= float(value) <= limit
        except ValueError:
            return False
    return check


FORMATS = {"sdtm-dtc": is_sdtm_dtc, "latitude": _in_range(90.0), "longitude": _in_range(180.0)}


@lru_cache(maxsize=None)
def schema(kind: str) -> dict:
    """`manifest` or a CSV kind (`sites`, `dm`, ...)."""
    return json.loads((HERE / f"{kind}.schema.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def validator(kind: str):
    return jsonschema_rs.validator_for(schema(kind), formats=FORMATS, validate_formats=True)


def columns(kind: str) -> list[str]:
    return list(schema(kind)["properties"])


def required_columns(kind: str) -> list[str]:
    return list(schema(kind)["required"])


def key_columns(kind: str) -> list[str]:
    return list(schema(kind)["x-key"])


def allows_extra_columns(kind: str) -> bool:
    return schema(kind).get("additionalProperties") is not False
