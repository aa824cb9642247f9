"""The published warehouse after one run over every shared real record: what analysts get."""
import json

import duckdb
import pytest

from expectations.dqd.checks import FATAL_CHECKS, run_dqd
from tests.conftest import land_every_real_record, study_files
from trialhouse.runner import run_pipeline
from trialhouse.settings import Settings


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("warehouse")
    land_every_real_record(tmp / "landing" / "ctgov")
    settings = Settings(str(tmp / "wh.duckdb"), str(tmp / "landing"), str(tmp / "exports"), None)
    report = run_pipeline(settings)
    assert report.success, report.failures
    con = duckdb.connect(settings.warehouse, read_only=True)
    yield con, tmp, report, settings
    con.close()


def test_every_full_record_is_published_and_partial_ones_are_held(warehouse):
    con, _, report, _ = warehouse
    states = dict(con.execute("SELECT status, count(*) FROM meta.study_state GROUP BY ALL").fetchall())
    studies = con.execute("SELECT count(DISTINCT nct_id) FROM raw.ctgov_study_version").fetchone()[0]
    assert states["published"] + states.get("quarantined", 0) == studies
    held = con.execute("SELECT DISTINCT rule FROM quarantine.record WHERE released_at IS NULL").fetchall()
    # Only the field-projected API pages (fields=...) lack required modules; every full record publishes.
    assert {r[0] for r in held} <= {"required_module.designModule", "required_module.sponsorCollaboratorsModule",
                                    "required_module.statusModule"}
    for p in study_files():
        assert con.execute("SELECT status FROM meta.study_state WHERE nct_id = ? AND status = 'published'",
                           [p.stem]).fetchone(), p.stem


def test_one_research_study_per_published_study(warehouse):
    con, *_ = warehouse
    assert con.execute("SELECT count(*) FROM fhir.research_study").fetchone()[0] == \
        con.execute("SELECT count(*) FROM meta.study_state WHERE status = 'published'").fetchone()[0]


def test_views_answer_the_analyst_questions_in_one_query_each(warehouse):
    con, *_ = warehouse
    by_country = con.execute("""
        SELECT s.country, count(DISTINCT r.nct_id) FROM fhir.research_study r
        JOIN fhir.research_study_site s USING (nct_id)
        WHERE r.status = 'recruiting' AND r.phase = 'phase-2' GROUP BY ALL ORDER BY 2 DESC""").fetchall()
    assert dict(by_country)["United States"] >= 1  # NCT06668571, recruiting, phase 2, Rochester MN
    sites = dict(con.execute("SELECT nct_id, count(*) FROM fhir.research_study_site GROUP BY ALL").fetchall())
    assert sites["NCT04267848"] == 1148 and sites["NCT06668571"] == 1
    mesh = dict(con.execute("""SELECT mesh_term, count(DISTINCT nct_id) FROM fhir.research_study_condition
                               WHERE mesh_code IS NOT NULL GROUP BY ALL""").fetchall())
    assert mesh.get("Depressive Disorder, Treatment-Resistant", 0) >= 1


def test_export_loads_back_and_every_reference_resolves(warehouse):
    con, tmp, _, _ = warehouse
    fhir = tmp / "exports" / "fhir"
    manifest = json.loads((fhir / "manifest.json").read_text())
    with duckdb.connect() as mem:
        total = 0
        ids = set()
        refs = []
        for out in manifest["output"]:
            rows = mem.execute("SELECT json FROM read_ndjson_objects(?)", [str(fhir / out["url"])]).fetchall()
            assert len(rows) == out["count"]
            total += len(rows)
            for (text,) in rows:
                res = json.loads(text)
                ids.add(f"{res['resourceType']}/{res['id']}")
                refs += _refs(res)
    assert total == con.execute("SELECT count(*) FROM fhir.resource").fetchone()[0]
    assert refs and all(r in ids for r in refs), [r for r in refs if r not in ids][:5]


def _refs(node):
    out = []
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str) and not node["reference"].startswith("#"):
            out.append(node["reference"])
        for k, v in node.items():
            if k != "contained":
                out += _refs(v)
    elif isinstance(node, list):
        for v in node:
            out += _refs(v)
    return out


def test_dqd_fatal_checks_find_nothing_in_the_published_omop_schema(warehouse):
    con, *_ = warehouse
    failed = [r for r in run_dqd(con, "omop", checks=set(FATAL_CHECKS)) if r.failed]
    assert failed == []


def test_seed_study_lands_in_omop_by_ohdsi_conventions(warehouse):
    con, *_ = warehouse
    assert con.execute("""SELECT city, state, country_source_value FROM omop.location l
                          JOIN omop.care_site c USING (location_id)
                          WHERE c.care_site_name ILIKE 'Mayo Clinic%' AND city = 'Rochester'""").fetchone() \
        == ("Rochester", "MN", "United States")
    arms = {r[0] for r in con.execute("SELECT cohort_definition_name FROM omop.cohort_definition "
                                      "WHERE cohort_definition_name LIKE 'NCT06668571:%'").fetchall()}
    assert arms == {"NCT06668571: Ketamine Group", "NCT06668571: Normal Saline/Placebo Group"}


def test_rerun_changes_nothing(warehouse):
    con, tmp, _, settings = warehouse
    before = _checksums(con)
    report = run_pipeline(settings)
    assert report.success and report.metadata["raw/ctgov_study_version"]["new_versions"] == 0
    with duckdb.connect(settings.warehouse, read_only=True) as again:
        after = _checksums(again)
    assert {k: v for k, v in after.items() if not k.startswith(("meta.", "quarantine."))} == \
        {k: v for k, v in before.items() if not k.startswith(("meta.", "quarantine."))}


def test_a_rerun_writes_an_export_part_edited_by_hand_again(warehouse):
    """The export is the warehouse's, not a copy to edit: a part changed since it was written stood until
    its studies changed, and a splice then carried the edit on."""
    _, tmp, _, settings = warehouse
    part = sorted((tmp / "exports" / "fhir" / "ResearchStudy").glob("*.ndjson"))[0]
    before = part.read_bytes()
    part.write_bytes(before.replace(b'"status":"', b'"status":"edited-', 1))
    report = run_pipeline(settings)
    assert report.success and part.read_bytes() == before


def _checksums(con):
    tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2").fetchall()
    return {f"{s}.{t}": con.execute(f'SELECT count(*), bit_xor(hash(x)) FROM "{s}"."{t}" AS x').fetchone()
            for s, t in tables}


def test_json_text_is_stored_zstd_compressed(warehouse):
    """Payloads and resources are most of the file's bytes, and every publish copies or compares the
    whole file: DuckDB stores them uncompressed unless the storage format allows zstd."""
    con, *_ = warehouse
    for table, column in [("raw.ctgov_study_version", "payload"), ("fhir.resource", "resource")]:
        kinds = {r[0] for r in con.execute(
            "SELECT DISTINCT compression FROM pragma_storage_info(?) WHERE column_name = ? AND segment_type = 'JSON'",
            [table, column]).fetchall()}
        assert kinds == {"ZSTD"}, (table, kinds)
