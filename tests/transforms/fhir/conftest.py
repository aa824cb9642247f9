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



PSEUDONYM_KEY = b"synthetic-test-pseudonym-key-000"


@pytest.fixture(scope="session")
def participant_rows(tmp_path_factory) -> dict:
    """Subject rows of a synthetic site delivery (30 participants at 2 sites) for the seed study."""
    import duckdb

    from transforms.fhir.research_subject import subject_rows
    from transforms.sites.ingest import ingest_site_deliveries
    from trialhouse.synth_site import generate_delivery

    root = tmp_path_factory.mktemp("fhir_subjects")
    generate_delivery(root / "sites", participants=30, sites=2, seed=11)
    con = duckdb.connect()
    ingest_site_deliveries(con, root)
    out = subject_rows(con, "NCT06668571")
    con.close()
    return out


@pytest.fixture(scope="session")
def participant_resources(participant_rows, seed_record) -> list[dict]:
    """Their Patient and ResearchSubject resources."""
    from transforms.fhir.research_subject import map_participants_fhir

    return map_participants_fhir(participant_rows, "NCT06668571", PSEUDONYM_KEY, registry=seed_record)
