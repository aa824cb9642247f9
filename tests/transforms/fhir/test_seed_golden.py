"""The seed study NCT06668571 (IV ketamine vs saline, Mayo Clinic), mapped field by field."""

from __future__ import annotations

import pytest

from tests.transforms.fhir._corpus import LAST_UPDATED, by_type

MESH = "http://id.nlm.nih.gov/mesh"


@pytest.fixture(scope="module")
def rs(seed_resources):
    return seed_resources[0]


def resolve(resources, ref):
    rtype, rid = ref["reference"].split("/")
    return next(r for r in resources if r["resourceType"] == rtype and r["id"] == rid)


def codes(concepts):
    return [c["coding"][0]["code"] for c in concepts if c.get("coding")]


def test_identity_and_meta(rs):
    assert rs["resourceType"] == "ResearchStudy" and rs["id"] == "nct06668571"
    assert rs["identifier"] == [{"use": "official", "system": "http://clinicaltrials.gov", "value": "NCT06668571"}]
    assert rs["meta"] == {"versionId": "3", "lastUpdated": LAST_UPDATED}
    assert rs["title"] == "Intravenous Ketamine for Treatment-Resistant Depression"
    assert rs["status"] == "active"


def test_phase_purpose_and_design(rs):
    assert rs["phase"]["coding"] == [{"system": "http://hl7.org/fhir/research-study-phase", "code": "phase-2", "display": "Phase 2"}]
    assert rs["primaryPurposeType"]["coding"][0]["code"] == "treatment"
    design = {c["text"]: c.get("coding", [{}])[0].get("code") for c in rs["studyDesign"]}
    assert design == {
        "Study Type: Interventional": "SEVCO:01001",
        "Allocation: Randomized": "SEVCO:01003",
        "Intervention Model: Parallel Assignment": "SEVCO:01011",
        "Masking: Triple": None,
    }


def test_status_and_dates(rs):
    first, start, end = rs["progressStatus"]
    assert first["state"]["coding"][0]["code"] == "recruiting"
    assert start["state"]["coding"][0]["code"] == "overall-study"
    assert start["actual"] is True and start["period"] == {"start": "2025-02-10"}
    assert end["actual"] is False and end["period"] == {"end": "2027-12-31"}
    assert rs["period"] == {"start": "2025-02-10", "end": "2027-12-31"}
    assert "whyStopped" not in rs


def test_conditions_keywords_region(rs):
    assert rs["condition"][0] == {"text": "Treatment Resistant Depression"}
    mesh = [c["coding"][0] for c in rs["condition"][1:]]
    assert mesh == [
        {"system": MESH, "code": "D061218", "display": "Depressive Disorder, Treatment-Resistant"},
        {"system": MESH, "code": "D003866", "display": "Depressive Disorder"},
    ]
    assert rs["focus"][0]["concept"]["coding"][0]["code"] == "D007649"  # ketamine
    assert rs["region"] == [{"coding": [{"system": "urn:iso:std:iso:3166", "code": "US", "display": "United States"}],
                             "text": "United States"}]


def test_arms_and_interventions(rs, seed_resources):
    arms = rs["comparisonGroup"]
    assert [(a["linkId"], a["name"], a["type"]["coding"][0]["code"]) for a in arms] == [
        ("ketamine-group", "Ketamine Group", "experimental"),
        ("normal-saline-placebo-group", "Normal Saline/Placebo Group", "placebo-comparator"),
    ]
    assert arms[0]["description"].startswith("Subjects will receive IV racemic ketamine at a dose of 0.5 mg per kg")
    ketamine = resolve(seed_resources, arms[0]["intendedExposure"][0])
    saline = resolve(seed_resources, arms[1]["intendedExposure"][0])
    assert ketamine["resourceType"] == "EvidenceVariable" and ketamine["title"] == "Ketamine"
    assert ketamine["useContext"][0]["valueCodeableConcept"]["text"] == "DRUG"
    assert saline["title"] == "Normal Saline"
    assert len(by_type(seed_resources, "EvidenceVariable")) == 2


def test_site_mayo_rochester(rs, seed_resources):
    assert len(rs["site"]) == 1
    site_study = resolve(seed_resources, rs["site"][0])
    assert site_study["partOf"] == [{"reference": "ResearchStudy/nct06668571", "type": "ResearchStudy"}]
    assert site_study["progressStatus"][0]["state"]["coding"][0]["code"] == "recruiting"
    location = resolve(seed_resources, site_study["site"][0])
    assert location["name"] == "Mayo Clinic in Rochester"
    assert location["address"] == {"city": "Rochester", "state": "Minnesota", "country": "United States"}


def test_recruitment_and_eligibility(rs, seed_resources):
    assert rs["recruitment"]["targetNumber"] == 30 and "actualNumber" not in rs["recruitment"]
    group = resolve(seed_resources, rs["recruitment"]["eligibility"])
    assert group["resourceType"] == "Group" and group["membership"] == "definitional"
    assert "PHQ-9 total score ≥ 15" in group["description"]
    age, healthy = group["characteristic"]  # sex ALL adds no restriction
    assert age["code"]["coding"][0]["code"] == "30525-0"
    assert age["valueRange"]["low"] == {"value": 18, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"}
    assert age["valueRange"]["high"]["value"] == 65
    assert healthy == {"code": {"text": "Accepts healthy volunteers"}, "valueBoolean": False, "exclude": False}


def test_parties(rs, seed_resources):
    parties = {p["role"]["coding"][0]["code"]: p for p in rs["associatedParty"]}
    assert set(parties) == {"lead-sponsor", "collaborator", "primary-investigator"}
    lead = parties["lead-sponsor"]
    assert lead["name"] == "Mayo Clinic"
    assert resolve(seed_resources, lead["party"]) == {
        "resourceType": "Organization", "id": lead["party"]["reference"].split("/")[1],
        "meta": {"versionId": "3", "lastUpdated": LAST_UPDATED}, "active": True, "name": "Mayo Clinic"}
    collab = parties["collaborator"]
    assert collab["name"] == "National Center for Advancing Translational Sciences (NCATS)"
    assert collab["classifier"][0]["coding"][0]["code"] == "nih"
    pi = parties["primary-investigator"]
    assert pi["name"] == "Balwinder Singh, M.D., M.S."
    assert {"text": "Responsible party (PRINCIPAL_INVESTIGATOR)"} in pi["classifier"]
    role = resolve(seed_resources, pi["party"])
    assert role["resourceType"] == "PractitionerRole"
    assert resolve(seed_resources, role["organization"])["name"] == "Mayo Clinic"
    person = resolve(seed_resources, role["practitioner"])
    assert person["name"][0]["text"].startswith("Balwinder Singh")
    assert len(by_type(seed_resources, "Practitioner")) == 1  # official and responsible party are one person


def test_references_and_classifiers(rs):
    citations = [a for a in rs["relatedArtifact"] if a["type"] == "citation"]
    assert len(citations) == 15 and all(a["classifier"] == [{"text": "BACKGROUND"}] for a in citations)
    assert rs["relatedArtifact"][0]["document"]["url"] == "https://clinicaltrials.gov/study/NCT06668571"
    assert {"text": "Has Results: No"} in rs["classifier"]


def test_outcomes_with_time_frames_elsewhere(top_level_resources):
    rs = next(r for r in top_level_resources if r["id"] == "nct06388018")
    types = {om["type"][0]["coding"][0]["code"] for om in rs["outcomeMeasure"]}
    assert "primary" in types
    assert all("Time frame: " in om.get("description", "") for om in rs["outcomeMeasure"])
