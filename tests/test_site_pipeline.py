"""Site deliveries through the whole pipeline: gate, OMOP person-level tables, FHIR subjects, publish."""
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from expectations.dqd.checks import FATAL_CHECKS, run_dqd
from tests.conftest import CTGOV
from transforms.omop.participants.queries import run_query
from trialhouse.runner import run_pipeline
from trialhouse.settings import Settings
from trialhouse.synth_site import generate_delivery, plant, write_manifest


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sites")
    landing = tmp / "landing"
    (landing / "ctgov").mkdir(parents=True)
    (landing / "ctgov" / "NCT06668571.json").write_bytes((CTGOV / "NCT06668571.json").read_bytes())
    first, second, third = generate_delivery(landing / "sites", participants=60, sites=3, seed=7, deaths=6)
    plant(first, "age_70")
    plant(first, "dose_above_rule")
    plant(third, "checksum_mismatch")
    settings = Settings(str(tmp / "wh.duckdb"), str(landing), str(tmp / "exports"), None)
    report = run_pipeline(settings)
    assert report.success, report.failures
    con = duckdb.connect(settings.warehouse, read_only=True)
    yield con, report, (first, second, third)
    con.close()


def test_planted_violations_are_held_and_valid_rows_published(published):
    con, report, (first, second, third) = published
    rules = {r[0]: r[1] for r in con.execute(
        "SELECT rule, any_value(reason) FROM quarantine.record WHERE released_at IS NULL GROUP BY ALL").fetchall()}
    assert "manifest_checksum" in rules and third.name in rules["manifest_checksum"]
    age = rules["eligibility.age_max"]
    assert f"delivery {first.name}, participant" in age and "dm.AGE = 70.0" in age
    assert "ex.EXDOSE" in rules["protocol.dose_rule"] and first.name in rules["protocol.dose_rule"]
    # The held delivery contributes nobody; the other two do, minus the held participant.
    persons = con.execute("SELECT count(*) FROM omop.person").fetchone()[0]
    with_data = {r[0] for r in con.execute("SELECT DISTINCT delivery_id FROM raw.sdtm_row_current").fetchall()}
    assert third.name not in with_data
    dm = con.execute("SELECT count(DISTINCT usubjid) FROM raw.sdtm_row_current WHERE domain = 'DM'").fetchone()[0]
    assert persons == dm - 1


def test_analyst_questions_answer_in_one_query_each(published):
    con, *_ = published
    phq9 = run_query(con, "phq9_change_by_arm", "NCT06668571")
    assert {r[0] for r in phq9} == {"Ketamine Group", "Normal Saline/Placebo Group"}
    assert run_query(con, "adverse_events_by_arm", "NCT06668571")
    sites = run_query(con, "participants_per_site", "NCT06668571")
    assert len(sites) == 2


def test_no_usubjid_or_key_in_the_published_warehouse(published):
    con, *_ = published
    usubjid = con.execute("SELECT usubjid FROM raw.sdtm_row_current LIMIT 1").fetchone()[0]
    assert not con.execute("SELECT count(*) FROM omop.person WHERE person_source_value = ?", [usubjid]).fetchone()[0]
    assert not con.execute("SELECT count(*) FROM fhir.resource WHERE resource::VARCHAR LIKE ?",
                           [f"%{usubjid}%"]).fetchone()[0]


def test_fhir_subjects_published(published):
    con, *_ = published
    counts = dict(con.execute("SELECT resource_type, count(*) FROM fhir.resource GROUP BY ALL").fetchall())
    persons = con.execute("SELECT count(*) FROM omop.person").fetchone()[0]
    assert counts["Patient"] == persons and counts["ResearchSubject"] == persons


def test_fhir_subjects_belong_to_their_study_and_carry_a_version(published):
    """Their ids name no study: they were stored with no nct_id, version '1' and no lastUpdated, and
    exported in the shared-xx parts meant for Organizations and Locations."""
    con, report, _ = published
    rows = con.execute("SELECT r.nct_id, r.version_id, r.last_updated IS NOT NULL, "
                       "json_extract_string(r.resource, '$.meta.versionId') = r.version_id, "
                       "CAST(json_extract_string(r.resource, '$.meta.lastUpdated') AS TIMESTAMPTZ) = r.last_updated "
                       "FROM fhir.resource r WHERE resource_type IN ('Patient', 'ResearchSubject')").fetchall()
    assert rows and {r[0] for r in rows} == {"NCT06668571"}
    assert all(len(r[1]) == 16 and r[2] and r[3] and r[4] for r in rows)
    assert len({r[1] for r in rows}) == len(rows)  # a digest of each one's content
    # exported in the study's NCT id part, beside its ResearchStudy
    wh = Path(con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()[0])
    for rtype in ("Patient", "ResearchSubject"):
        parts = sorted(p.name for p in (wh.parent / "exports" / "fhir" / rtype).glob("*.ndjson"))
        assert parts == ["NCT0666.ndjson"], (rtype, parts)


def test_deaths_are_published_alike_in_omop_and_fhir(published):
    """Each death of a participant published: one omop.death row (cause the fatal AE's condition) and the
    Patient's deceasedDateTime, the same day; a held participant's death is in neither."""
    con, *_ = published
    dead = con.execute(
        "SELECT count(*) FROM raw.sdtm_row_current r WHERE domain = 'DM' AND json_extract_string(record, 'DTHFL') = 'Y' "
        "AND NOT EXISTS (SELECT 1 FROM stage.site_row_excluded x WHERE x.delivery_key = r.delivery_key "
        "AND x.usubjid = r.usubjid)").fetchone()[0]
    omop = dict(con.execute("SELECT 'pt-' || p.person_source_value, d.death_date::VARCHAR FROM omop.death d "
                            "JOIN omop.person p USING (person_id)").fetchall())
    fhir = dict(con.execute("SELECT json_extract_string(resource, 'id'), json_extract_string(resource, 'deceasedDateTime') "
                            "FROM fhir.resource WHERE resource_type = 'Patient' "
                            "AND json_extract_string(resource, 'deceasedDateTime') IS NOT NULL").fetchall())
    assert 0 < dead == len(omop) and omop == fhir
    assert con.execute("SELECT DISTINCT cause_concept_id, death_type_concept_id FROM omop.death").fetchall() == [(4329847, 32809)]


def test_cdm_source_release_date_is_on_or_after_every_published_event(published):
    """The CDM: "the latest event date in the source is on the source_release_date". It was the
    registry's newest update (2026-04-09 in the demo) while participants' events ran to June."""
    con, *_ = published
    release, events = con.execute("SELECT source_release_date, (SELECT max(observation_period_end_date) FROM "
                                  "omop.observation_period) FROM omop.cdm_source").fetchone()
    registry = con.execute("SELECT max(last_update_post_date) FROM raw.ctgov_study_version").fetchone()[0]
    assert events > registry and release == events


def test_dqd_fatal_checks_zero_with_participant_data(published):
    con, *_ = published
    assert [r for r in run_dqd(con, "omop", checks=set(FATAL_CHECKS)) if r.failed] == []


def _seed_with_a_site(tmp_path) -> tuple:
    """The seed study and one synthetic site of 8 participants, run once: (landing, settings, record)."""
    landing = tmp_path / "landing"
    (landing / "ctgov").mkdir(parents=True)
    record = json.loads((CTGOV / "NCT06668571.json").read_bytes())
    (landing / "ctgov" / "NCT06668571.json").write_bytes((CTGOV / "NCT06668571.json").read_bytes())
    generate_delivery(landing / "sites", participants=8, sites=1, seed=11, cutoff="2026-06-30")
    settings = Settings(str(tmp_path / "wh.duckdb"), str(landing), str(tmp_path / "exports"), None)
    first = run_pipeline(settings)
    assert first.success and first.metadata["stage/site_data"]["skipped"] is False
    return landing, settings, record


def _persons(settings) -> tuple:
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        return con.execute("SELECT count(*), bit_xor(hash(p)) FROM omop.person AS p").fetchone()


def test_site_data_is_regated_only_when_deliveries_change(tmp_path):
    landing, settings, _ = _seed_with_a_site(tmp_path)
    before = _persons(settings)
    again = run_pipeline(settings)
    assert again.success and again.metadata["stage/site_data"]["skipped"] is True
    assert _persons(settings) == before
    # A newer delivery of the same site (later cut-off, more participants) is gated and mapped again.
    generate_delivery(landing / "sites", participants=12, sites=1, seed=11, cutoff="2026-09-30")
    third = run_pipeline(settings)
    assert third.success and third.metadata["stage/site_data"]["skipped"] is False
    assert _persons(settings)[0] == 12


def test_site_data_is_checked_against_the_published_version_not_a_held_newer_one(tmp_path):
    """A newer version of the study held in quarantine (here: posted in 2099) is not what the site's
    participants are checked against: the gate would hold them by a record nobody has published."""
    landing, settings, record = _seed_with_a_site(tmp_path)
    before = _persons(settings)
    assert before[0] == 8
    # every participant is an adult: a version admitting children only would hold them all
    record["protocolSection"]["eligibilityModule"].update(minimumAge="1 Year", maximumAge="12 Years", stdAges=["CHILD"])
    record["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": "2099-01-01", "type": "ACTUAL"}
    (landing / "ctgov" / "NCT06668571-v2.json").write_text(json.dumps(record))
    second = run_pipeline(settings)
    assert second.success and second.value("publish/warehouse", "quarantined") == 1  # the future-dated version
    assert second.metadata["stage/site_data"]["skipped"] is True  # same deliveries, same published record
    assert _persons(settings) == before


def test_a_published_registry_change_that_holds_every_participant_blocks_at_the_gate(tmp_path):
    """The study's new version admits children only, so the site's adults are all held. That is the
    gate's to decide (it blocks on the share held); the mapping of no participants against an id map
    that holds earlier ones crashed the stage instead (an empty pseudonym frame typed INTEGER)."""
    landing, settings, record = _seed_with_a_site(tmp_path)
    before = _persons(settings)
    record["protocolSection"]["eligibilityModule"].update(minimumAge="1 Year", maximumAge="12 Years", stdAges=["CHILD"])
    record["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": "2026-11-20", "type": "ACTUAL"}
    (landing / "ctgov" / "NCT06668571-v2.json").write_text(json.dumps(record))

    second = run_pipeline(settings)

    assert not second.success
    assert second.metadata["stage/site_data"]["participants_held"] == 8
    assert [f for f in second.failures if "site_protocol_gate" in f] and not [f for f in second.failures if "Conversion" in f]
    assert _persons(settings) == before


def test_a_delivery_before_its_study_waits_and_says_so(tmp_path):
    """Site data of a study with no registry record yet cannot be checked: it waits (not quarantined,
    not lost), the run names the study, and the run that brings the record maps it."""
    landing = tmp_path / "landing"
    (landing / "ctgov").mkdir(parents=True)
    (landing / "ctgov" / "NCT00184067.json").write_bytes((CTGOV / "NCT00184067.json").read_bytes())
    generate_delivery(landing / "sites", participants=8, sites=1, seed=11, cutoff="2026-06-30")
    settings = Settings(str(tmp_path / "wh.duckdb"), str(landing), str(tmp_path / "exports"), None)

    first = run_pipeline(settings)

    assert first.success and first.metadata["stage/site_data"]["skipped"] is True
    assert first.metadata["stage/site_data"]["waiting_for_registry"] == ["NCT06668571"]
    # and the run's summary says so, not only its log (a mistyped NCT id would wait for ever, unseen)
    from trialhouse.cli import _summary

    assert _summary(first, settings)["site_studies_waiting_for_registry"] == ["NCT06668571"]
    assert _persons(settings)[0] == 0
    (landing / "ctgov" / "NCT06668571.json").write_bytes((CTGOV / "NCT06668571.json").read_bytes())
    second = run_pipeline(settings)
    assert second.success and second.metadata["stage/site_data"]["waiting_for_registry"] == []
    assert _persons(settings)[0] == 8


def test_an_implausible_date_holds_its_participant_not_the_run(tmp_path):
    """A date of the right form before any OMOP event may be (DQD: from 1950) mapped through and failed
    DQD's batch-level plausibility: the gate blocked every site's data and the registry's batch, and
    no record said which row (found by an adversarial review). The participant is held, named."""
    landing = tmp_path / "landing"
    (landing / "ctgov").mkdir(parents=True)
    (landing / "ctgov" / "NCT06668571.json").write_bytes((CTGOV / "NCT06668571.json").read_bytes())
    first, second = generate_delivery(landing / "sites", participants=8, sites=2, seed=11, cutoff="2026-06-30")
    where = plant(first, "implausible_date")
    settings = Settings(str(tmp_path / "wh.duckdb"), str(landing), str(tmp_path / "exports"), None)

    report = run_pipeline(settings)

    assert report.success, report.failures
    assert report.metadata["stage/site_data"]["participants_held"] == 1
    subject = where.split(": ")[0].split()[-1]
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        rows = con.execute("SELECT rule, field, reason FROM quarantine.record WHERE suite = 'site_protocol'").fetchall()
        assert {r[0] for r in rows} == {"plausibility.date"}  # the participant's rows, each held for it
        (reason,) = [r[2] for r in rows if r[1] == "ae.AESTDTC"]
        assert subject in reason and "1900-01-01" in reason
        assert con.execute("SELECT count(*) FROM omop.person").fetchone()[0] == 7
        assert con.execute("SELECT count(*) FROM fhir.research_study WHERE nct_id = 'NCT06668571'").fetchone()[0] == 1


@pytest.mark.parametrize("violation,rule,field,domain", [
    ("ae_end_before_start", "plausibility.end_before_start", "ae.AEENDTC", "AE"),
    ("negative_dose", "plausibility.negative_dose", "ex.EXDOSE", "EX"),
])
def test_an_event_ending_before_it_starts_or_a_negative_dose_holds_that_row_not_the_run(tmp_path, violation, rule,
                                                                                         field, domain):
    """One AE ending the day before it started mapped through and failed DQD's batch-level
    plausibleStartBeforeEnd, and a negative placebo dose its plausibleValue on drug_exposure.quantity:
    each blocked every site's data and the registry's batch, with no record saying which row (found by
    a review). The row is held alone, named; everything else publishes."""
    landing = tmp_path / "landing"
    (landing / "ctgov").mkdir(parents=True)
    (landing / "ctgov" / "NCT06668571.json").write_bytes((CTGOV / "NCT06668571.json").read_bytes())
    first, _ = generate_delivery(landing / "sites", participants=8, sites=2, seed=11, cutoff="2026-06-30")
    where = plant(first, violation)
    settings = Settings(str(tmp_path / "wh.duckdb"), str(landing), str(tmp_path / "exports"), None)

    report = run_pipeline(settings)

    assert report.success, report.failures
    assert not any(not c["passed"] for c in report.checks.values())
    site = report.metadata["stage/site_data"]
    assert (site["participants_held"], site["rows_held_alone"]) == (0, 1)
    subject = where.split(":")[0].split()[-3 if domain == "EX" else -1]
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        rows = con.execute("SELECT rule, field, record_key, reason FROM quarantine.record "
                           "WHERE suite = 'site_protocol'").fetchall()
        assert [(r[0], r[1]) for r in rows] == [(rule, field)]
        assert rows[0][2].endswith(subject) and subject in rows[0][3]
        assert con.execute("SELECT count(*) FROM omop.person").fetchone()[0] == 8
        table = "condition_occurrence" if domain == "AE" else "drug_exposure"
        published = con.execute(f"SELECT count(*) FROM omop.{table}").fetchone()[0]
        raw = con.execute("SELECT count(*) FROM raw.sdtm_row_current WHERE domain = ?", [domain]).fetchone()[0]
        assert published == raw - 1


def test_a_participant_a_newer_delivery_leaves_out_goes_from_fhir_and_its_export_too(tmp_path):
    """The newer delivery of the site leaves out two participants: OMOP dropped their persons, but
    their Patient and ResearchSubject stayed in fhir.resource and the bulk export (their ids name no
    study, so the by-study replacement never reached them)."""
    landing, settings, _ = _seed_with_a_site(tmp_path)

    def fhir_people():
        with duckdb.connect(settings.warehouse, read_only=True) as con:
            rows = con.execute("SELECT resource_type, count(*) FROM fhir.resource WHERE resource_type IN "
                               "('Patient', 'ResearchSubject') GROUP BY 1 ORDER BY 1").fetchall()
        lines = sum(len(p.read_text().splitlines()) for p in (Path(settings.export) / "fhir" / "Patient").glob("*.ndjson"))
        return rows, lines

    assert fhir_people() == ([("Patient", 8), ("ResearchSubject", 8)], 8)
    (folder,) = generate_delivery(tmp_path / "later", participants=8, sites=1, seed=11, cutoff="2026-09-30")
    for name in ("dm", "ds", "sv", "ex", "vs", "qs", "ae"):  # participants 0007 and 0008 left out
        path = folder / f"{name}.csv"
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(line for line in lines if "-0007," not in line and "-0008," not in line))
    manifest = json.loads((folder / "manifest.json").read_text())
    write_manifest(folder, manifest, [f["name"] for f in manifest["files"]])
    shutil.copytree(folder, landing / "sites" / folder.name)

    report = run_pipeline(settings)

    assert report.success, report.failures
    assert _persons(settings)[0] == 6
    assert fhir_people() == ([("Patient", 6), ("ResearchSubject", 6)], 6)


def test_a_new_registry_version_keeps_its_study_s_participants_in_fhir(tmp_path):
    """Participants carry their study's nct_id; the publish replaces a study's resources by nct_id when a
    new registry version lands, and must leave its participants to their deliveries."""
    landing, settings, record = _seed_with_a_site(tmp_path)
    record["protocolSection"]["identificationModule"]["briefTitle"] += " (updated)"
    record["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": "2026-10-01", "type": "ACTUAL"}
    (landing / "ctgov" / "NCT06668571-v2.json").write_text(json.dumps(record))
    report = run_pipeline(settings)
    assert report.success, report.failures
    assert report.value("publish/warehouse", "studies_published") == 1
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        people = con.execute("SELECT resource_type, count(*) FROM fhir.resource WHERE nct_id = 'NCT06668571' AND "
                             "resource_type IN ('Patient', 'ResearchSubject') GROUP BY 1 ORDER BY 1").fetchall()
        title = con.execute("SELECT title FROM fhir.research_study").fetchone()[0]
    assert people == [("Patient", 8), ("ResearchSubject", 8)] and title.endswith("(updated)")
    lines = sum(len(p.read_text().splitlines()) for p in (Path(settings.export) / "fhir" / "Patient").glob("*.ndjson"))
    assert lines == 8


def test_the_automation_s_runs_of_a_new_delivery_without_the_registry_steps_publish_it(tmp_path):
    """After a publish the staging schemas are gone; the runs the automation makes for a new delivery
    (the raw step, then the site stage and the publish, or the publish alone) hold no registry step
    to create them again, and failed on `stage_fhir.resource`."""
    import dagster as dg

    from orchestration.definitions import build_definitions

    landing = tmp_path / "landing"
    (landing / "ctgov").mkdir(parents=True)
    (landing / "ctgov" / "NCT06668571.json").write_bytes((CTGOV / "NCT06668571.json").read_bytes())
    generate_delivery(landing / "sites", participants=6, sites=1, seed=1)
    settings = Settings(str(tmp_path / "wh.duckdb"), str(landing), str(tmp_path / "exports"), None)
    assert run_pipeline(settings).success
    generate_delivery(landing / "sites", participants=9, sites=1, seed=3, cutoff="2026-07-31", delivery_id="newcut")
    job = build_definitions(settings).resolve_job_def("pipeline")
    for selection in (["raw/site_delivery"], ["stage/site_data", "publish/warehouse"], ["publish/warehouse"]):
        subset = job.get_subset(asset_selection={dg.AssetKey.from_user_string(k) for k in selection})
        result = subset.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        assert result.success, (selection, [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"])
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM omop.person").fetchone()[0] == 9
        assert con.execute("SELECT count(*) FROM fhir.resource WHERE resource_type = 'Patient'").fetchone()[0] == 9


def test_a_new_participant_mapping_maps_a_warehouse_s_participants_again_once(tmp_path, monkeypatch):
    """Site data are gated and mapped only when deliveries, registry versions or the pseudonym key change:
    participants published under an older mapping kept it until then. The mapping's version is part of
    the fingerprint."""
    from transforms.sites import fingerprint

    landing, settings, _ = _seed_with_a_site(tmp_path)
    assert run_pipeline(settings).metadata["stage/site_data"]["skipped"] is True
    monkeypatch.setattr(fingerprint, "MAPPING_VERSION", fingerprint.MAPPING_VERSION + 1)
    again = run_pipeline(settings)
    assert again.success and again.metadata["stage/site_data"]["skipped"] is False
    assert run_pipeline(settings).metadata["stage/site_data"]["skipped"] is True
