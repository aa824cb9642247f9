"""Participants (synthetic site data) -> pseudonymous Patient + ResearchSubject, validated at all three levels."""
import json
from pathlib import Path

import pytest

from tests.transforms.fhir.conftest import PSEUDONYM_KEY as KEY
from transforms.fhir.research_study import map_study
from transforms.ctgov.arm_labels import find_arm
from transforms.fhir.research_subject import arm_link_ids, map_participants_fhir
from transforms.fhir.validate import validate_resources
from transforms.omop.participants.pseudonym import pseudonym

REPO = Path(__file__).resolve().parents[3]
RECORD = json.loads((REPO / "tests" / "data" / "ctgov" / "NCT06668571.json").read_text())


@pytest.fixture(scope="module")
def rows(participant_rows):
    return participant_rows


@pytest.fixture(scope="module")
def resources(participant_resources):
    return participant_resources


def test_one_patient_and_one_research_subject_per_participant_all_valid(rows, resources):
    assert len(resources) == 2 * len(rows) == 60
    assert validate_resources(resources) == {}
    assert validate_resources(resources, mode="full") == {}


def test_patients_are_pseudonymous(rows, resources):
    text = json.dumps(resources)
    assert "NCT06668571-0" not in text and "SUBJID" not in text  # no USUBJID/SUBJID anywhere
    patients = {r["id"]: r for r in resources if r["resourceType"] == "Patient"}
    assert set(patients) == {"pt-" + pseudonym(u, KEY) for u in rows}
    for usubjid, domains in rows.items():
        p = patients["pt-" + pseudonym(usubjid, KEY)]
        dm = domains["DM"][0]
        assert set(p) <= {"resourceType", "id", "gender", "birthDate"}  # no name, no identifier
        assert p["gender"] == {"M": "male", "F": "female"}[dm["SEX"]]
        assert p["birthDate"] == dm["BRTHDTC"]  # as precise as given (YYYY-MM here)
    assert len({p["id"] for p in map_participants_fhir(rows, "NCT06668571", b"another-key-of-32-bytes-00000000")
                if p["resourceType"] == "Patient"} & set(patients)) == 0


def test_research_subject_links_study_patient_and_registry_arms(rows, resources):
    study = map_study(RECORD)[0]
    groups = {g["name"]: g["linkId"] for g in study["comparisonGroup"]}
    links = arm_link_ids(RECORD)
    assert find_arm(links, "Ketamine Group") == find_arm(links, "ketamine  GROUP") == groups["Ketamine Group"]
    assert find_arm(links, "normal saline placebo group") == groups["Normal Saline/Placebo Group"]
    subjects = {r["subject"]["reference"]: r for r in resources if r["resourceType"] == "ResearchSubject"}
    for usubjid, domains in rows.items():
        dm = domains["DM"][0]
        rs = subjects[f"Patient/pt-{pseudonym(usubjid, KEY)}"]
        assert rs["study"]["reference"] == f"ResearchStudy/{study['id']}" == "ResearchStudy/nct06668571"
        assert rs["assignedComparisonGroup"] == groups[dm["ARM"]]
        assert rs["actualComparisonGroup"] == groups[dm["ACTARM"]]
        assert rs["period"]["start"] == dm["RFICDTC"]


def state_codes(rs):
    return [p["subjectState"]["coding"][0]["code"] for p in rs["progress"]]


def test_progress_follows_consent_exposure_and_disposition(rows, resources):
    subjects = {r["id"]: r for r in resources if r["resourceType"] == "ResearchSubject"}
    seen = set()
    for usubjid, domains in rows.items():
        rs = subjects["rs-" + pseudonym(usubjid, KEY)]
        codes = state_codes(rs)
        assert codes[:2] == ["screening", "on-study-intervention"]
        ds = domains.get("DS", [])
        if not ds:
            assert codes[-1] == "follow-up" and "end" not in rs["period"]
        elif ds[-1]["DSDECOD"] == "COMPLETED":
            assert codes[-1] == "off-study" and rs["period"]["end"] == ds[-1]["DSSTDTC"]
        else:
            assert codes[-1] == "withdrawn" and rs["progress"][-1]["reason"]["text"] == ds[-1]["DSDECOD"]
        seen.add(codes[-1])
        assert one_state_at_a_time(rs), rs["progress"]
    assert "off-study" in seen


def one_state_at_a_time(rs: dict) -> bool:
    """Enrollment has a single value at a time: every state but the last ends where the next begins."""
    p = rs["progress"]
    return all(a.get("endDate") and a["endDate"] <= b["startDate"] for a, b in zip(p, p[1:])) and "endDate" not in p[-1] \
        or p[-1].get("endDate") is not None and all(a.get("endDate") for a in p)


def test_subjects_without_dm_are_skipped_and_age_only_has_no_birth_date():
    dm = {"USUBJID": "NCT06668571-001-0001", "SEX": "F", "AGE": "40", "AGEU": "YEARS", "RFICDTC": "2025-03-01",
          "ARM": "Ketamine Group", "ACTARM": "Ketamine Group"}
    out = map_participants_fhir({"NCT06668571-001-0001": {"dm": [dm]}, "ghost": {"EX": [{"USUBJID": "ghost"}]}},
                                "NCT06668571", KEY, registry=RECORD)
    assert [r["resourceType"] for r in out] == ["Patient", "ResearchSubject"]
    assert "birthDate" not in out[0]
    assert state_codes(out[1]) == ["screening"]
    assert validate_resources(out, mode="full") == {}


def test_a_participant_who_died_is_deceased_at_the_date_and_off_study(tmp_path):
    """Generated deaths: DM DTHFL/DTHDTC, DS DEATH and a fatal AE. Patient.deceasedDateTime is the day
    (SDTM times have no offset, which FHIR requires of a time); the DS DEATH is off-study, reason DEATH,
    not a withdrawal."""
    import duckdb

    from transforms.fhir.research_subject import subject_rows
    from transforms.sites.ingest import ingest_site_deliveries
    from trialhouse.synth_site import generate_delivery

    generate_delivery(tmp_path / "sites", participants=8, sites=1, seed=3, deaths=2)
    con = duckdb.connect()
    ingest_site_deliveries(con, tmp_path)
    rows = subject_rows(con, "NCT06668571")
    dead = {u: r["DM"][0]["DTHDTC"] for u, r in rows.items() if r["DM"][0].get("DTHFL") == "Y"}
    assert len(dead) == 2
    # one death given to the minute and another only as a month, in DM alone
    first, second = sorted(dead)
    rows[first]["DM"][0]["DTHDTC"] += "T14:30"
    rows[second]["DM"][0]["DTHDTC"] = dead[second][:7]
    for u in (second,):
        rows[u]["DS"] = [r for r in rows[u]["DS"] if r["DSDECOD"] != "DEATH"]
        rows[u]["AE"] = [r for r in rows[u]["AE"] if r.get("AEOUT") != "FATAL"]
    out = map_participants_fhir(rows, "NCT06668571", KEY, registry=RECORD)
    assert validate_resources(out) == {} and validate_resources(out, mode="full") == {}
    patients = {r["id"]: r for r in out if r["resourceType"] == "Patient"}
    deceased = {u: patients["pt-" + pseudonym(u, KEY)].get("deceasedDateTime") for u in rows}
    assert deceased == {u: {first: dead[first], second: dead[second][:7]}.get(u) for u in rows}
    rs = next(r for r in out if r["id"] == "rs-" + pseudonym(first, KEY))
    assert rs["progress"][-1]["subjectState"]["coding"][0]["code"] == "off-study"
    assert rs["progress"][-1]["reason"] == {"text": "DEATH"} and rs["progress"][-1]["startDate"] == dead[first]
    # DM alone says the second died: no DS DEATH row, yet off-study from the death, not an open follow-up
    rs = next(r for r in out if r["id"] == "rs-" + pseudonym(second, KEY))
    assert [(p["subjectState"]["coding"][0]["code"], p.get("startDate"), p.get("reason")) for p in rs["progress"]][-1] == (
        "off-study", dead[second][:7], {"text": "DEATH"})
    assert rs["period"]["end"] >= dead[second][:7]
    alive = [r for r in out if r["resourceType"] == "ResearchSubject"
             and r["id"] not in ("rs-" + pseudonym(first, KEY), "rs-" + pseudonym(second, KEY))]
    assert alive and not any(p.get("reason") == {"text": "DEATH"} for r in alive for p in r["progress"])
    # completed, then died: one off-study state closed where the death's begins, not two open at once
    # (the second's death is known to its month alone, after a day in that month: no order to close on)
    for r in out:
        if r["resourceType"] == "ResearchSubject" and r["id"] != "rs-" + pseudonym(second, KEY):
            assert one_state_at_a_time(r), r["progress"]
    assert sum(p["subjectState"]["coding"][0]["code"] == "off-study" for p in rs["progress"]) == 2


def test_versions_change_with_content_and_keep_their_date_while_it_does_not(resources):
    """versionId is a digest of the content; lastUpdated is when that content was first published."""
    import copy
    import datetime as dt

    import duckdb

    from transforms.fhir.research_subject import stamp_versions
    from transforms.fhir.store import create_fhir_schema, write_resources

    first = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.timezone.utc)
    later = dt.datetime(2026, 8, 1, 9, 30, tzinfo=dt.timezone.utc)
    con = duckdb.connect()
    staged = copy.deepcopy(resources)
    stamp_versions(con, staged, first)  # nothing published yet
    assert {r["meta"]["lastUpdated"] for r in staged} == {"2026-07-01T12:00:00.000Z"}
    assert list(staged[0])[:3] == ["resourceType", "id", "meta"]
    assert validate_resources(staged) == {}
    create_fhir_schema(con, "fhir")
    write_resources(con, "fhir", staged, replace_studies=False, nct_id="NCT06668571")
    again = copy.deepcopy(resources)
    changed = next(r for r in again if r["resourceType"] == "ResearchSubject")
    changed["status"] = "retired"
    stamp_versions(con, again, later)
    before = {(r["resourceType"], r["id"]): r["meta"] for r in staged}
    for r in again:
        old = before[(r["resourceType"], r["id"])]
        if r is changed:
            assert r["meta"]["versionId"] != old["versionId"] and r["meta"]["lastUpdated"] == "2026-08-01T09:30:00.000Z"
        else:
            assert r["meta"] == old
