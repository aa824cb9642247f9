"""The quality gate end to end (CLI → Dagster → GX → quarantine/publish) with real records made bad
one way at a time."""
import hashlib
import json
from pathlib import Path

import duckdb
import pytest

from tests.conftest import CTGOV, study_files
from trialhouse.cli import main

SEED = json.loads((CTGOV / "NCT06668571.json").read_text())
P = "protocolSection"


def variant(nct_id, change):
    rec = json.loads(json.dumps(SEED))
    rec[P]["identificationModule"]["nctId"] = nct_id
    change(rec)
    return rec


def set_path(path, value):
    def change(rec):
        node = rec
        *parents, last = path
        for p in parents:
            node = node[p]
        node[last] = value
    return change


BAD = {
    "unknown_status": (set_path([P, "statusModule", "overallStatus"], "BOGUS"),
                       "enum.overall_status", "protocolSection.statusModule.overallStatus"),
    "phase9": (set_path([P, "designModule", "phases"], ["PHASE9"]),
               "enum.phase_phase", "protocolSection.designModule.phases[0]"),
    "enrolment_minus_5": (set_path([P, "designModule", "enrollmentInfo", "count"], -5),
                          "enrollment_non_negative", "protocolSection.designModule.enrollmentInfo.count"),
    "start_2025_13_40": (set_path([P, "statusModule", "startDateStruct", "date"], "2025-13-40"),
                         "date_format.start_date", "protocolSection.statusModule.startDateStruct.date"),
    "latitude_123": (lambda r: r[P]["contactsLocationsModule"]["locations"][0].__setitem__("geoPoint", {"lat": 123, "lon": -92.46}),
                     "site_latitude_range", "protocolSection.contactsLocationsModule.locations[0].geoPoint.lat"),
    "arm_names_missing_intervention": (
        lambda r: r[P]["armsInterventionsModule"]["armGroups"][0]["interventionNames"].append("Drug: Esketamine"),
        "arm_intervention_resolves", "protocolSection.armsInterventionsModule.armGroups[0].interventionNames[1]"),
    "missing_design_module": (lambda r: r[P].pop("designModule"),
                              "required_module.designModule", "protocolSection.designModule"),
    # Posted dates cannot lie ahead: one such record used to pass here and block every publish at the
    # DQD gate (cdm_source.source_release_date is the newest lastUpdatePostDate), run after run.
    "last_update_posted_2099": (set_path([P, "statusModule", "lastUpdatePostDateStruct", "date"], "2099-01-05"),
                                "not_future.last_update_post_date",
                                "protocolSection.statusModule.lastUpdatePostDateStruct.date"),
    "blank_title": (set_path([P, "identificationModule", "briefTitle"], "  "),
                    "not_blank.brief_title", "protocolSection.identificationModule.briefTitle"),
    # R5 strings carry no control character but tab, CR and LF: published and exported as \u0000 before
    "nul_in_title": (set_path([P, "identificationModule", "briefTitle"], "Ketamine\u0000 for depression"),
                     "valid_resource", "ResearchStudy/nct99000001"),
    "first_submitted_2099": (set_path([P, "statusModule", "studyFirstSubmitDate"], "2099-01"),
                             "not_future.study_first_submit_date", "protocolSection.statusModule.studyFirstSubmitDate"),
}


def run(landing, tmp_path, capsys):
    code = main(["run", "--landing", str(landing.root), "--warehouse", str(tmp_path / "wh.duckdb"),
                 "--export", str(tmp_path / "exports"), "--json"])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def published(tmp_path, sql, params=()):
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def good_files(landing, n=24):
    for p in study_files()[:n]:
        landing.drop(p)
    return {p.stem for p in study_files()[:n]}


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_bad_record_is_quarantined_and_the_good_ones_published(name, landing, tmp_path, capsys):
    change, rule, field = BAD[name]
    good = good_files(landing)
    landing.write(f"{name}.json", json.dumps(variant("NCT99000001", change)))
    code, summary = run(landing, tmp_path, capsys)
    assert code == 0 and not summary["blocked"], summary["failures"]
    assert summary["quarantined"] >= 1 and summary["published"] == len(good)
    rows = published(tmp_path, "SELECT rule, field, reason, record_key, source_file FROM quarantine.record")
    assert (rule, field) in {(r[0], r[1]) for r in rows}
    reason = next(r[2] for r in rows if r[0] == rule)
    assert f"ctgov/{name}.json" in reason and "NCT99000001" in reason and field in reason
    state = dict(published(tmp_path, "SELECT nct_id, status FROM meta.study_state"))
    assert state.pop("NCT99000001") == "quarantined"
    assert set(state) == good and set(state.values()) == {"published"}


def test_missing_nct_id_is_quarantined_at_ingestion(landing, tmp_path, capsys):
    good = good_files(landing)
    rec = variant("x", lambda r: None)
    del rec[P]["identificationModule"]["nctId"]
    landing.write("no_id.json", json.dumps(rec))
    code, summary = run(landing, tmp_path, capsys)
    assert code == 0 and summary["quarantined"] == 1 and summary["published"] == len(good)
    (reason,) = published(tmp_path, "SELECT reason FROM quarantine.record")[0]
    assert "ctgov/no_id.json" in reason and "protocolSection.identificationModule.nctId" in reason


def test_a_version_held_for_a_future_date_does_not_hide_the_next_one(landing, tmp_path, capsys):
    """The current version is the newest not held: a held 2099 version ranked above every later
    correction of its study, so none was ever staged (found on a 100,000-study warehouse)."""
    good_files(landing, n=3)
    date = [P, "statusModule", "lastUpdatePostDateStruct", "date"]
    landing.write("ahead.json", json.dumps(variant("NCT99000003", set_path(date, "2099-01-05"))))
    code, summary = run(landing, tmp_path, capsys)
    assert code == 0 and summary["quarantined"] == 1 and summary["published"] == 3
    landing.write("corrected.json", json.dumps(variant("NCT99000003", set_path(date, "2026-11-20"))))
    code, summary = run(landing, tmp_path, capsys)
    assert code == 0 and summary["published"] == 1 and summary["quarantined"] == 0, summary
    state = published(tmp_path, "SELECT status, count(*) FROM meta.study_state WHERE nct_id = 'NCT99000003' GROUP BY ALL")
    assert sorted(state) == [("published", 1), ("quarantined", 1)]
    (studies,) = published(tmp_path, "SELECT count(*) FROM fhir.resource WHERE nct_id = 'NCT99000003' "
                                    "AND resource_type = 'ResearchStudy'")[0]
    assert studies >= 1


def test_a_newer_version_held_leaves_the_older_one_landed_with_it_published_in_the_same_run(landing, tmp_path,
                                                                                           capsys):
    """Current is the newest version not held, so holding the newer one makes the older current: it was
    neither published nor held, and waited for a next run, which a sensor starts only when another file
    lands (a fuzzing review). Two held in turn: the third, oldest, version is published."""
    good_files(landing, n=3)
    date, status = [P, "statusModule", "lastUpdatePostDateStruct", "date"], [P, "statusModule", "overallStatus"]

    def dated(day, bad=None):
        def change(rec):
            set_path(date, day)(rec)
            if bad:
                set_path(status, bad)(rec)
        return change

    landing.write("v1.json", json.dumps(variant("NCT99000004", dated("2026-01-10"))))
    landing.write("v2.json", json.dumps(variant("NCT99000004", dated("2026-02-10", "BOGUS"))))
    landing.write("v3.json", json.dumps(variant("NCT99000004", dated("2026-03-10", "FOO"))))
    code, summary = run(landing, tmp_path, capsys)
    assert code == 0 and not summary["blocked"], summary
    assert summary["published"] == 4 and summary["quarantined"] == 2, summary
    state = published(tmp_path, "SELECT s.status, v.last_update_post_date::VARCHAR FROM meta.study_state s "
                                "JOIN raw.ctgov_study_version v USING (nct_id, content_hash) "
                                "WHERE nct_id = 'NCT99000004' ORDER BY 2")
    assert state == [("published", "2026-01-10"), ("quarantined", "2026-02-10"), ("quarantined", "2026-03-10")]
    assert published(tmp_path, "SELECT count(*) FROM fhir.research_study WHERE nct_id = 'NCT99000004'") == [(1,)]
    assert published(tmp_path, "SELECT value_as_string FROM omop.metadata WHERE name = 'NCT99000004:overall_status'") \
        == [(SEED[P]["statusModule"]["overallStatus"],)]
    code, summary = run(landing, tmp_path, capsys)  # nothing left to decide
    assert code == 0 and summary["published"] == 0 and summary["quarantined"] == 0, summary["failures"]


def test_duplicate_nct_ids_with_different_content_in_one_batch(landing, tmp_path, capsys):
    good = good_files(landing)
    landing.write("dup_a.json", json.dumps(variant("NCT99000002", set_path([P, "identificationModule", "briefTitle"], "A"))))
    landing.write("dup_b.json", json.dumps(variant("NCT99000002", set_path([P, "identificationModule", "briefTitle"], "B"))))
    code, summary = run(landing, tmp_path, capsys)
    assert code == 0 and summary["published"] == len(good)
    rows = published(tmp_path, "SELECT source_file, rule FROM quarantine.record ORDER BY 1")
    assert rows == [("ctgov/dup_a.json", "one_current_version_per_study"), ("ctgov/dup_b.json", "one_current_version_per_study")]


def file_sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table_checksums(path):
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2").fetchall()
        return {f"{s}.{t}": con.execute(f'SELECT count(*), bit_xor(hash(x)) FROM "{s}"."{t}" AS x').fetchone()
                for s, t in tables}


def test_schema_drift_blocks_the_whole_batch(landing, tmp_path, capsys):
    good_files(landing, 5)
    assert run(landing, tmp_path, capsys)[0] == 0
    before_file, before_tables = file_sha(tmp_path / "wh.duckdb"), table_checksums(tmp_path / "wh.duckdb")
    for p in study_files()[5:10]:
        landing.drop(p)
    drifted = variant("NCT99000003", lambda r: r[P].__setitem__("brandNewModule", {"x": 1}))
    landing.write("drift.json", json.dumps(drifted))
    code, summary = run(landing, tmp_path, capsys)
    assert code != 0 and summary["blocked"] and summary["published"] == 0
    assert [f.split(":")[0] for why in summary["blocked_by"].values() for f in why["batch_rule_failures"]] == \
        ["no_unknown_sections"]
    assert file_sha(tmp_path / "wh.duckdb") == before_file
    assert table_checksums(tmp_path / "wh.duckdb") == before_tables
    # The drifted record is not held: the next run stages it again and blocks again (README, "The gate").
    code, summary = run(landing, tmp_path, capsys)
    assert code != 0 and summary["blocked"] and summary["published"] == 0
    assert file_sha(tmp_path / "wh.duckdb") == before_file


def test_quarantine_share_above_limit_blocks(landing, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRIALHOUSE_MIN_BATCH_FOR_SHARE", "4")
    monkeypatch.setenv("TRIALHOUSE_MAX_QUARANTINE_SHARE", "0.25")
    good_files(landing, 3)
    for i in range(2):
        landing.write(f"bad{i}.json", json.dumps(variant(f"NCT9900001{i}", set_path([P, "statusModule", "overallStatus"], "X"))))
    code, summary = run(landing, tmp_path, capsys)
    assert code != 0 and summary["blocked"] and summary["published"] == 0
    # a block, not a crash: the blocking check's failed step is not listed as a failure beside it
    assert summary["failures"] == [] and not summary["success"]
    assert not (tmp_path / "wh.duckdb").exists()  # nothing was ever published
    # and the summary says why: the check's metadata was lost with the CLI's ephemeral instance
    (why,) = summary["blocked_by"].values()
    assert why["batch_rule_failures"] == ["quarantine_share: 2 of 5 records (40%) quarantined, above the limit "
                                          "of 25% (TRIALHOUSE_MAX_QUARANTINE_SHARE)"]
    assert why["data_docs"] and (tmp_path / "exports" / "data_docs") in Path(why["data_docs"]).parents
    with duckdb.connect(str(tmp_path / "wh.work.duckdb"), read_only=True) as con:  # and the run's record holds it
        share = con.execute("SELECT level, evaluated, failed, examples FROM quarantine.rule_result "
                            "WHERE suite = 'ctgov_registry' AND rule = 'quarantine_share'").fetchall()
    assert [(lv, n, f, json.loads(e)) for lv, n, f, e in share] == [("batch", 5, 2, why["batch_rule_failures"])]
    # The share blocks the run that held the records; the holds stand, so the next run's batch is the
    # three good records, and it publishes them (README, "The gate").
    code, summary = run(landing, tmp_path, capsys)
    assert code == 0 and not summary["blocked"] and summary["published"] == 3
    assert published(tmp_path, "SELECT evaluated, failed FROM quarantine.rule_result WHERE run_id = ? AND suite = 'ctgov_registry' AND "
                     "rule = 'quarantine_share'", [summary["run_id"]]) == [(3, 0)]
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT DISTINCT record_key FROM quarantine.record WHERE released_at IS NULL ORDER BY 1"
                           ).fetchall() == [("NCT99000010",), ("NCT99000011",)]


def test_crash_between_staging_and_publish_leaves_warehouse_unchanged(landing, tmp_path, capsys, monkeypatch):
    good_files(landing, 3)
    assert run(landing, tmp_path, capsys)[0] == 0
    before = file_sha(tmp_path / "wh.duckdb")
    for p in study_files()[3:6]:
        landing.drop(p)

    import orchestration.quality.publish as publish

    def boom(con, run_id):
        raise RuntimeError("injected crash during publish")

    monkeypatch.setattr(publish, "MERGES", [*publish.MERGES, boom])
    code, summary = run(landing, tmp_path, capsys)
    assert code != 0 and any("injected crash" in f for f in summary["failures"])
    assert file_sha(tmp_path / "wh.duckdb") == before
    monkeypatch.undo()
    code, summary = run(landing, tmp_path, capsys)
    assert code == 0 and summary["published"] == 3
    assert published(tmp_path, "SELECT count(*) FROM meta.study_state WHERE status = 'published'") == [(6,)]


def test_a_hold_made_by_a_run_that_died_before_its_publish_reaches_the_analysts_file_on_the_next_run(
        landing, tmp_path, capsys, monkeypatch):
    """The rerun found nothing to publish and kept the snapshot, so the analysts' quarantine.record never
    named the hold (nor the file that failed whole) until a publish changed something (a crash-consistency
    review). Then a run with nothing new leaves the file alone again."""
    good_files(landing, 3)
    assert run(landing, tmp_path, capsys)[0] == 0
    landing.write("bogus.json", json.dumps(variant("NCT99000005", set_path([P, "statusModule", "overallStatus"],
                                                                             "NOT_A_STATUS"))))
    landing.write("broken.json", "{not json")

    import orchestration.quality.publish as publish

    def dies(con, run_id):
        raise RuntimeError("killed before the publish")

    monkeypatch.setattr(publish, "MERGES", [dies, *publish.MERGES])
    code, summary = run(landing, tmp_path, capsys)
    assert code != 0 and summary["quarantined"] == 1
    monkeypatch.undo()
    before = file_sha(tmp_path / "wh.duckdb")

    code, summary = run(landing, tmp_path, capsys)

    assert code == 0 and summary["published"] == 0 and summary["quarantined"] == 0, summary["failures"]
    assert file_sha(tmp_path / "wh.duckdb") != before
    assert published(tmp_path, "SELECT record_key, rule FROM quarantine.record") == [("NCT99000005", "enum.overall_status")]
    assert published(tmp_path, "SELECT path FROM raw.landed_file WHERE status = 'failed'") == [("ctgov/broken.json",)]
    after = file_sha(tmp_path / "wh.duckdb")
    assert run(landing, tmp_path, capsys)[0] == 0
    assert file_sha(tmp_path / "wh.duckdb") == after


SHAPES = {  # a repeated element of the wrong JSON type: flattening it crashed the registry stage, run after run
    "NCT99000011": (set_path([P, "contactsLocationsModule", "locations"], ["Mayo Clinic"]),
                    "protocolSection.contactsLocationsModule.locations[0]"),
    "NCT99000012": (lambda r: r[P]["contactsLocationsModule"]["locations"][0].__setitem__("geoPoint", "44.0,-92.5"),
                    "protocolSection.contactsLocationsModule.locations[0].geoPoint"),
    "NCT99000013": (lambda r: r[P]["armsInterventionsModule"]["armGroups"][0].__setitem__("interventionNames", "Drug: X"),
                    "protocolSection.armsInterventionsModule.armGroups[0].interventionNames"),
    "NCT99000014": (set_path([P, "armsInterventionsModule", "interventions"], {"name": "X"}),
                    "protocolSection.armsInterventionsModule.interventions"),
    # Any field of the registry contract (schemas/ctgov: record_schema), not only the repeated elements the
    # suite flattens. These passed and were published mangled (a fuzzing review): a string where a list of
    # strings belongs became one FHIR condition, keyword or old identifier per character; a boolean given
    # as text vanished from FHIR and read "no" in OMOP's cohort definition.
    "NCT99000015": (set_path([P, "conditionsModule", "conditions"], "Depression"),
                    "protocolSection.conditionsModule.conditions"),
    "NCT99000016": (set_path([P, "conditionsModule", "keywords"], "ketamine"), "protocolSection.conditionsModule.keywords"),
    "NCT99000017": (set_path([P, "identificationModule", "nctIdAliases"], "NCT00000001"),
                    "protocolSection.identificationModule.nctIdAliases"),
    "NCT99000018": (set_path([P, "eligibilityModule", "healthyVolunteers"], "no"),
                    "protocolSection.eligibilityModule.healthyVolunteers"),
    "NCT99000019": (lambda r: r[P].setdefault("oversightModule", {}).__setitem__("isFdaRegulatedDrug", "true"),
                    "protocolSection.oversightModule.isFdaRegulatedDrug"),
    "NCT99000020": (set_path(["hasResults"], "yes"), "hasResults"),
    "NCT99000021": (set_path([P, "designModule", "enrollmentInfo", "count"], "60"),
                    "protocolSection.designModule.enrollmentInfo.count"),
}


def test_records_of_the_wrong_json_shape_are_held_and_the_rest_published(landing, tmp_path, capsys):
    good = good_files(landing, n=6)
    for nct_id, (change, _) in SHAPES.items():
        landing.write(f"{nct_id}.json", json.dumps(variant(nct_id, change)))
    code, summary = run(landing, tmp_path, capsys)
    assert code == 0 and not summary["blocked"], summary["failures"]
    assert summary["published"] == len(good) and summary["quarantined"] == len(SHAPES)
    rows = published(tmp_path, "SELECT record_key, field, reason FROM quarantine.record WHERE rule = 'json_shape' ORDER BY 1")
    assert [(r[0], r[1]) for r in rows] == [(n, f) for n, (_, f) in SHAPES.items()]
    assert all(f"ctgov/{r[0]}.json" in r[2] and r[1] in r[2] and "not the JSON type" in r[2] for r in rows)
    # a scalar of the wrong type is shown, not only its type (a newcomer's walkthrough)
    assert any("= 'string \"" in r[2] for r in rows), rows
    state = dict(published(tmp_path, "SELECT nct_id, status FROM meta.study_state"))
    assert {n: state[n] for n in SHAPES} == {n: "quarantined" for n in SHAPES}
