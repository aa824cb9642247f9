"""The registry contract's record schema (schemas/ctgov/contract.py: record_schema), written from the API
v2 field tree: it must take every real record as it is, and refuse a field of another JSON type."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest

from schemas.ctgov.contract import record_schema
from tests.conftest import page_files, study_files, version_files


def real_records() -> list[dict]:
    records = [json.loads(p.read_text()) for p in study_files() + version_files()]
    for page in page_files():
        records += json.loads(page.read_text())["studies"]
    return records


def test_every_real_record_keeps_the_contract():
    records = real_records()
    assert len(records) > 100 and any(r.get("resultsSection") for r in records)
    validator = jsonschema_rs.validator_for(record_schema())
    refused = {r["protocolSection"]["identificationModule"]["nctId"]: [e.message for e in validator.iter_errors(r)][:3]
               for r in records if not validator.is_valid(r)}
    assert refused == {}


@pytest.mark.parametrize(("path", "value"), [
    (["protocolSection", "conditionsModule", "conditions"], "Depression"),  # text[]
    (["protocolSection", "conditionsModule", "conditions"], ["Depression", 7]),
    (["protocolSection", "eligibilityModule", "healthyVolunteers"], "no"),  # boolean
    (["protocolSection", "designModule", "enrollmentInfo", "count"], 60.5),  # integer
    (["protocolSection", "identificationModule", "briefTitle"], {"text": "x"}),  # text
    (["protocolSection", "designModule", "phases"], "PHASE2"),  # an enum list
    (["protocolSection", "contactsLocationsModule", "locations"], [{"geoPoint": {"lat": "44.0", "lon": 1}}]),
    (["resultsSection", "adverseEventsModule", "eventGroups"], [{"deathsNumAffected": "3"}]),  # integer, as TEXT
    (["hasResults"], "yes"),
])
def test_a_field_of_another_json_type_is_refused(path, value):
    record = json.loads(study_files()[0].read_text())
    node = record
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    assert not jsonschema_rs.validator_for(record_schema()).is_valid(record)


def test_null_and_fields_the_tree_does_not_name_are_left_to_other_rules():
    record = json.loads(study_files()[0].read_text())
    record["protocolSection"]["identificationModule"]["officialTitle"] = None
    record["protocolSection"]["identificationModule"]["someNewField"] = [1, 2]
    assert jsonschema_rs.validator_for(record_schema()).is_valid(record)
