"""Session fixtures over the real records of tests/data/ctgov."""

from __future__ import annotations

import json

import pytest

from tests.transforms.fhir._corpus import DATA, LAST_UPDATED, TOP_LEVEL
from transforms.fhir import map_study


@pytest.fixture(scope="session")
def seed_record() -> dict:
    return json.loads((DATA / "NCT06668571.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def seed_resources(seed_record) -> list[dict]:
    return map_study(seed_record, version_id="3", last_updated=LAST_UPDATED)


@pytest.fixture(scope="session")
def top_level_resources() -> list[dict]:
    """Resources of the 32 single-study files, as one load would write them."""
    out: list[dict] = []
    for _, record in TOP_LEVEL:
        out += map_study(record, last_updated=LAST_UPDATED)
    return out

