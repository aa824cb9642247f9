"""MappingError names the field at fault; ids are stable and shared where they should be."""

from __future__ import annotations

import copy
import json
import re

import pytest

from tests.transforms.fhir._corpus import ALL_RECORDS, LAST_UPDATED, TOP_LEVEL
from transforms.fhir import MappingError, map_study
from transforms.fhir.errors import MappingError as ErrorsMappingError
from transforms.fhir.ids import organization_id


def test_mapping_error_is_exported_from_errors_module():
    assert MappingError is ErrorsMappingError


def test_missing_nct_id_names_the_field(seed_record):
    record = copy.deepcopy(seed_record)
    del record["protocolSection"]["identificationModule"]["nctId"]
    with pytest.raises(MappingError) as info:
        map_study(record)
    assert info.value.field == "protocolSection.identificationModule.nctId"
    assert "missing" in info.value.message


@pytest.mark.parametrize("change,field", [
    (lambda r: r["protocolSection"]["designModule"].update(phases=["PHASE5"]), "protocolSection.designModule.phases[0]"),
    (lambda r: r["protocolSection"]["designModule"].update(phases=["PHASE1", "PHASE3"]), "protocolSection.designModule.phases"),
    (lambda r: r["protocolSection"]["statusModule"].update(overallStatus="PAUSED"), "protocolSection.statusModule.overallStatus"),
    (lambda r: r["protocolSection"]["armsInterventionsModule"]["armGroups"][1].update(type="PLACEBO"),
     "protocolSection.armsInterventionsModule.armGroups[1].type"),
    (lambda r: r["protocolSection"]["contactsLocationsModule"]["locations"][0].update(status="OPEN"),
     "protocolSection.contactsLocationsModule.locations[0].status"),
    (lambda r: r["protocolSection"]["eligibilityModule"].update(minimumAge="eighteen"),
     "protocolSection.eligibilityModule.minimumAge"),
    (lambda r: r["protocolSection"]["identificationModule"].update(nctId="NCT123"),
     "protocolSection.identificationModule.nctId"),
])
def test_unknown_values_name_the_field(seed_record, change, field):
    record = copy.deepcopy(seed_record)
    change(record)
    with pytest.raises(MappingError) as info:
        map_study(record)
    assert info.value.field == field
    assert str(info.value).startswith(field + ": ")


def test_not_a_record():
    with pytest.raises(MappingError) as info:
        map_study(["NCT06668571"])
    assert info.value.field == "$"


@pytest.mark.parametrize("name,record", TOP_LEVEL, ids=[n for n, _ in TOP_LEVEL])
def test_mapping_twice_gives_identical_output(name, record):
    first = map_study(record, version_id="2", last_updated=LAST_UPDATED)
    second = map_study(json.loads(json.dumps(record)), version_id="2", last_updated=LAST_UPDATED)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_version_bumps_meta_only(seed_record):
    v1 = map_study(seed_record, version_id="1", last_updated="2025-01-01T00:00:00Z")
    v2 = map_study(seed_record, version_id="2", last_updated="2025-10-14T00:00:00Z")
    assert [r["id"] for r in v1] == [r["id"] for r in v2]
    assert {r["meta"]["versionId"] for r in v2} == {"2"}
    strip = lambda rs: [{k: v for k, v in r.items() if k != "meta"} for r in rs]
    assert strip(v1) == strip(v2)
    assert "lastUpdated" not in map_study(seed_record)[0]["meta"]


def test_ids_follow_natural_keys(seed_resources):
    assert seed_resources[0]["id"] == "nct06668571"
    pattern = re.compile(r"^[A-Za-z0-9\-\.]{1,64}$")
    assert all(pattern.match(r["id"]) for _, rec in ALL_RECORDS for r in map_study(rec))


def test_same_organisation_gets_one_id_across_studies(top_level_resources):
    assert organization_id("Mayo Clinic") == organization_id("MAYO CLINIC.") == organization_id(" mayo  clinic ")
    assert organization_id("Mayo Clinic") != organization_id("Mayo Clinic Arizona")
    orgs = {}
    for r in top_level_resources:
        if r["resourceType"] == "Organization":
            orgs.setdefault(r["id"], set()).add(r["name"])
    assert all(len(names) == 1 for names in orgs.values())
    studies_per_org = {}
    for r in top_level_resources:
        if r["resourceType"] == "ResearchStudy" and "partOf" not in r:
            for p in r.get("associatedParty", []):
                ref = p.get("party", {}).get("reference", "")
                if ref.startswith("Organization/"):
                    studies_per_org.setdefault(ref, set()).add(r["id"])
    assert max(len(s) for s in studies_per_org.values()) > 1, "no organisation shared by two studies"


def test_versions_of_one_study_keep_their_ids():
    versions = [rec for name, rec in ALL_RECORDS if "NCT01967030" in name]
    assert len(versions) == 2
    ids = [sorted((r["resourceType"], r["id"]) for r in map_study(v)) for v in versions]
    assert ids[0] == ids[1]
