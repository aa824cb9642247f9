"""Raw ingestion over the real registry records in tests/data/ctgov."""
import io
import json
import os
import zipfile

from tests.conftest import CTGOV, Counting, page_files, study_files, version_files
from transforms.ctgov.ingest import ingest_landing


def counts(con):
    return con.execute("SELECT count(*), count(DISTINCT nct_id) FROM raw.ctgov_study_version").fetchone()


def page_studies():
    ids = set()
    for p in page_files():
        ids |= {s["protocolSection"]["identificationModule"]["nctId"] for s in json.loads(p.read_text())["studies"]}
    return ids


def test_every_record_page_and_version_file_ingests(con, landing):
    for p in study_files():
        landing.drop(p)
    for p in page_files():
        landing.drop(p, subdir="pages")
    for p in version_files():
        landing.drop(p, subdir="deep/versions")  # any depth
    summary = ingest_landing(con, landing.root, run_id="t1")
    assert summary.files_failed == 0, summary.errors
    assert summary.files_loaded == len(study_files()) + len(page_files()) + len(version_files())
    expected = {p.stem for p in study_files()} | page_studies() | {p.stem.split("_")[1] for p in version_files()}
    got = {r[0] for r in con.execute("SELECT DISTINCT nct_id FROM raw.ctgov_study_version").fetchall()}
    assert got == expected
    assert con.execute("SELECT count(*) FROM raw.landed_file WHERE status = 'loaded'").fetchone()[0] == summary.files_loaded
    # one current row per study
    assert con.execute("SELECT count(*) FROM raw.ctgov_study_current").fetchone()[0] == len(expected)


def test_rerun_over_same_files_adds_nothing(con, landing):
    for p in study_files()[:5]:
        landing.drop(p)
    ingest_landing(con, landing.root)
    before = counts(con), con.execute("SELECT count(*) FROM raw.landed_file").fetchone()
    again = ingest_landing(con, landing.root)
    assert again.files_new == 0 and again.new_versions == 0
    assert (counts(con), con.execute("SELECT count(*) FROM raw.landed_file").fetchone()) == before


def test_a_rescan_costs_the_same_statements_however_many_files_were_processed_before(con, landing):
    """Files already processed and unchanged are recognised in one query: per file, a lookup, a write and
    a check each run made a landing folder that keeps its daily files slower every day."""
    for p in study_files()[:1]:
        landing.drop(p)
    ingest_landing(con, landing.root)
    one = Counting(con)
    assert ingest_landing(one, landing.root).files_new == 0
    for p in study_files()[1:]:
        landing.drop(p)
    ingest_landing(con, landing.root)
    seen = con.execute("SELECT * FROM raw.landing_path ORDER BY path").fetchall()
    many = Counting(con)
    again = ingest_landing(many, landing.root)
    assert again.files_seen == len(study_files()) > 30 and again.files_new == 0
    assert len(many.statements) == len(one.statements)
    assert con.execute("SELECT * FROM raw.landing_path ORDER BY path").fetchall() == seen  # nothing rewritten


def test_same_content_under_another_name_is_processed_once(con, landing):
    landing.drop(CTGOV / "NCT00184067.json")
    landing.drop(CTGOV / "NCT00184067.json", name="copy-of-it.json", subdir="later")
    s = ingest_landing(con, landing.root)
    assert s.files_seen == 2 and s.files_new == 1
    assert counts(con) == (1, 1)


def test_a_study_repeated_in_one_file_is_stored_once_from_its_first_place(con, landing):
    """Decided in Python on the keys before the insert (a QUALIFY there carried every payload of the batch
    through DuckDB's grouping). The first place, not the least name: "studies[10]" < "studies[2]" kept the
    eleventh of a study given at [2] and [10] (a review)."""
    recs = [json.loads(p.read_text()) for p in study_files()[:11]]
    studies = [recs[0], recs[1], recs[0], recs[2], recs[1]] + recs[3:9] + [recs[2]]  # [2] and [11], ...
    landing.write("pages/repeats.json", json.dumps({"studies": studies}))
    s = ingest_landing(con, landing.root)
    assert s.new_versions == 9 and counts(con) == (9, 9)
    kept = dict(con.execute("SELECT nct_id, source_record FROM raw.ctgov_study_version").fetchall())
    first = {r["protocolSection"]["identificationModule"]["nctId"]: i for i, r in reversed(list(enumerate(studies)))}
    assert {n: int(rec.rsplit("[", 1)[1].rstrip("]")) for n, rec in kept.items()} == first


def test_version_holder_only_change_adds_nothing(con, landing):
    landing.drop(CTGOV / "versions/2025-12-23_NCT01967030.json")
    ingest_landing(con, landing.root)
    landing.drop(CTGOV / "versions/2026-01-02_NCT01967030.json")
    s = ingest_landing(con, landing.root)
    assert s.files_new == 1 and s.new_versions == 0
    assert counts(con) == (1, 1)


def test_real_change_adds_exactly_one_version(con, landing):
    landing.drop(CTGOV / "versions/2025-12-23_NCT05766735.json")
    ingest_landing(con, landing.root)
    landing.drop(CTGOV / "NCT05766735.json")
    s = ingest_landing(con, landing.root)
    assert s.new_versions == 1
    assert counts(con) == (2, 1)


def test_older_version_arriving_later_does_not_become_current(con, landing):
    landing.drop(CTGOV / "NCT05766735.json")  # newer: lastUpdatePostDate 2026-04-09
    ingest_landing(con, landing.root)
    landing.drop(CTGOV / "versions/2025-12-23_NCT05766735.json")  # older: 2025-05-07
    ingest_landing(con, landing.root)
    rows = con.execute(
        "SELECT last_update_post_date::VARCHAR, version_seq, version_count FROM raw.ctgov_study_history ORDER BY version_seq"
    ).fetchall()
    assert rows == [("2025-05-07", 1, 2), ("2026-04-09", 2, 2)]
    current = con.execute("SELECT last_update_post_date::VARCHAR, source_file FROM raw.ctgov_study_current").fetchone()
    assert current == ("2026-04-09", "ctgov/NCT05766735.json")


def test_a_version_whose_update_date_is_not_a_date_is_held_not_ranked_below_the_rest(con, landing):
    """A newer NCT03630471 (new title, lastUpdatePostDate "2026-01-15T00:00:00Z") was stored with no
    date, so it ranked below the real 2019 version: never staged, never checked, never quarantined."""
    landing.drop(CTGOV / "NCT03630471.json")
    newer = json.loads((CTGOV / "NCT03630471.json").read_text())
    newer["protocolSection"]["identificationModule"]["briefTitle"] = "A newer title"
    newer["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2026-01-15T00:00:00Z"
    landing.write("newer.json", json.dumps(newer))
    s = ingest_landing(con, landing.root, run_id="run-d")
    assert s.new_versions == 1 and s.records_quarantined == 1
    assert con.execute("SELECT source_file FROM raw.ctgov_study_version").fetchall() == [("ctgov/NCT03630471.json",)]
    field, reason, key = con.execute("SELECT field, reason, record_key FROM quarantine.record").fetchone()
    assert field == "protocolSection.statusModule.lastUpdatePostDateStruct.date"
    assert "ctgov/newer.json" in reason and "'2026-01-15T00:00:00Z'" in reason and "not a date" in reason
    # keyed and named by its study, which it names plainly (`quarantine list --nct` found nothing)
    assert key == "NCT03630471" and reason.startswith("ctgov/newer.json record NCT03630471: ")


def test_file_name_that_lies_is_keyed_by_the_record(con, landing):
    # The shared corpus itself has one: a NCT02552212 record that was stored as NCT02278341.json.
    landing.drop(CTGOV / "versions/2024-01-03_NCT02552212.json", name="NCT02278341.json")
    ingest_landing(con, landing.root)
    assert con.execute("SELECT nct_id FROM raw.ctgov_study_version").fetchall() == [("NCT02552212",)]


def test_malformed_file_fails_with_readable_error_while_others_load(con, landing):
    landing.drop(CTGOV / "NCT00184067.json")
    landing.write("broken.json", (CTGOV / "NCT03418623.json").read_text()[:500])
    landing.write("notes.json", json.dumps({"hello": "world"}))
    s = ingest_landing(con, landing.root)
    assert s.files_loaded == 1 and s.files_failed == 2
    errors = dict(con.execute("SELECT path, error FROM raw.landed_file WHERE status = 'failed'").fetchall())
    assert errors["ctgov/broken.json"].startswith("ctgov/broken.json: invalid JSON at line")
    assert "not a ClinicalTrials.gov API v2 study or page" in errors["ctgov/notes.json"]
    assert counts(con) == (1, 1)


def test_unkeyable_record_in_page_is_quarantined_and_the_rest_load(con, landing):
    page = json.loads((CTGOV / "pages/page_cyanheads_pagesize2.json").read_text())
    del page["studies"][1]["protocolSection"]["identificationModule"]["nctId"]
    landing.write("page.json", json.dumps(page))
    s = ingest_landing(con, landing.root, run_id="run-q")
    assert s.files_loaded == 1 and s.new_versions == 1 and s.records_quarantined == 1
    row = con.execute("SELECT source_file, source_record, field, reason, run_id, payload IS NOT NULL FROM quarantine.record").fetchone()
    assert row[:3] == ("ctgov/page.json", "studies[1]", "protocolSection.identificationModule.nctId")
    assert "ctgov/page.json record studies[1]" in row[3] and "nctId" in row[3]
    assert row[4:] == ("run-q", True)


def test_bulk_zip_is_read_member_by_member(con, landing):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in study_files():
            zf.write(p, f"ctg-studies/{p.name}")
        zf.writestr("ctg-studies/NCT99999999.json", "{ not json")
    landing.write("ctg-studies.json.zip", buf.getvalue())
    s = ingest_landing(con, landing.root)
    assert s.files_loaded == 1
    assert s.records_seen == len(study_files()) + 1
    assert s.records_quarantined == 1
    assert counts(con) == (len(study_files()), len(study_files()))
    reason = con.execute("SELECT reason FROM quarantine.record").fetchone()[0]
    assert "ctg-studies/NCT99999999.json" in reason and "invalid JSON" in reason


def test_changed_file_at_same_path_is_processed_again(con, landing):
    path = landing.drop(CTGOV / "versions/2025-12-23_NCT05766735.json", name="study.json")
    ingest_landing(con, landing.root)
    path.write_bytes((CTGOV / "NCT05766735.json").read_bytes())
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10_000_000))
    s = ingest_landing(con, landing.root)
    assert s.files_new == 1 and s.new_versions == 1


def test_in_flight_and_hidden_files_are_ignored(con, landing):
    landing.write(".hidden.json", (CTGOV / "NCT00184067.json").read_text())
    landing.write("page.json.partial", (CTGOV / "NCT00184067.json").read_text())
    assert ingest_landing(con, landing.root).files_seen == 0


def _snapshot(con):
    return {
        "versions": con.execute("SELECT nct_id, content_hash, last_update_post_date, version_holder, payload::VARCHAR, "
                                "source_record FROM raw.ctgov_study_version ORDER BY source_record, nct_id").fetchall(),
        "held": con.execute("SELECT source_record, record_key, field, reason, payload FROM quarantine.record "
                            "ORDER BY ALL").fetchall(),
        "file": con.execute("SELECT status, error, records_seen, records_failed, new_versions "
                            "FROM raw.landed_file").fetchall(),
    }


def test_a_big_zip_read_in_worker_processes_lands_exactly_what_one_process_does(tmp_path, monkeypatch):
    """Slices of a bulk zip are inflated, parsed and keyed in worker processes; versions, holds with
    their reasons, and the file's counts must be those of the one-process read."""
    import duckdb

    from tests.conftest import Landing
    from transforms.ctgov import ingest

    monkeypatch.setattr(ingest, "ZIP_SLICE", 3)
    monkeypatch.setattr(ingest, "PARALLEL_MIN_MEMBERS", 4)
    tasks = []

    class CountingPool(ingest.ProcessPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            tasks.append(args)
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(ingest, "ProcessPoolExecutor", CountingPool)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, p in enumerate(study_files()):
            zf.write(p, f"ctg-studies/{p.name}")
            if i == 4:
                zf.writestr("ctg-studies/NCT99999999.json", "{ not json")
                zf.writestr("ctg-studies/NCT99999998.json", '{"protocolSection": {}}')  # cannot be keyed
        for p in page_files()[:1]:  # an API page inside the zip: several studies in one member
            zf.write(p, f"pages/{p.name}")
    runs = {}
    for workers in (1, 2):
        landing = Landing(tmp_path / f"landing{workers}")
        landing.write("ctg-studies.json.zip", buf.getvalue())
        con = duckdb.connect(str(tmp_path / f"w{workers}.duckdb"))
        s = ingest_landing(con, landing.root, run_id="r", workers=workers)
        assert s.files_loaded == 1 and s.records_quarantined == 2, s.errors
        runs[workers] = _snapshot(con)
        con.close()
    assert len(tasks) > 2  # the two-worker read went through the pool, in slices
    assert runs[1] == runs[2]
    assert len(runs[2]["versions"]) >= len(study_files())
    reasons = [h[3] for h in runs[2]["held"]]
    assert any("NCT99999999.json" in r and "invalid JSON" in r for r in reasons)
    assert any("NCT99999998.json" in r and "nctId" in r for r in reasons)
