"""The published FHIR table has no PRIMARY KEY (its index did not fit DuckDB's cap at registry scale),
so the publish itself keeps (resource_type, id) unique: it refuses staged rows that repeat a key."""
import duckdb
import pytest

from orchestration.quality.publish import merge_fhir
from schemas import apply_sql, ensure_base_schemas
from tests.transforms.fhir.conftest import (participant_resources, participant_rows, seed_record,  # noqa: F401
                                           top_level_resources)  # (the FHIR tests' fixtures)
from transforms.fhir.store import create_fhir_schema, write_resources


@pytest.fixture
def con(top_level_resources):
    con = duckdb.connect()
    ensure_base_schemas(con)
    apply_sql(con, "meta/meta.sql")
    con.execute("CREATE SCHEMA IF NOT EXISTS stage")
    con.execute("CREATE TABLE stage.ctgov_study (nct_id VARCHAR)")
    create_fhir_schema(con, "fhir")
    create_fhir_schema(con, "stage_fhir")
    write_resources(con, "fhir", top_level_resources)
    write_resources(con, "stage_fhir", top_level_resources)
    return con


def test_staged_resources_replace_their_keys(con, top_level_resources):
    merge_fhir(con, "run-2")
    rows = con.execute("SELECT resource_type, id, count(*) FROM fhir.resource GROUP BY ALL").fetchall()
    assert len(rows) == len({(r["resourceType"], r["id"]) for r in top_level_resources}) and {n for *_, n in rows} == {1}


def test_a_key_staged_twice_is_refused(con):
    con.execute("INSERT INTO stage_fhir.resource SELECT * FROM stage_fhir.resource WHERE resource_type = 'Organization' LIMIT 1")
    with pytest.raises(ValueError, match="stage_fhir.resource holds Organization/.* 2 times: nothing is published"):
        merge_fhir(con, "run-2")


def test_the_merge_records_the_studies_whose_export_lines_change(con):
    """The export splices these studies' lines into the parts the merge pends (transforms/fhir/export.py)."""
    from transforms.fhir.export import pending_studies

    staged = [r[0] for r in con.execute("SELECT DISTINCT nct_id FROM stage_fhir.resource WHERE nct_id IS NOT NULL").fetchall()]
    # the batch's studies, and the owner of every staged row even if the batch did not list it
    con.execute("INSERT INTO stage.ctgov_study SELECT unnest(?::VARCHAR[])", [staged[: len(staged) // 2]])
    merge_fhir(con, "run-2")
    assert con.execute("SELECT DISTINCT run_id FROM meta.fhir_export_pending_study").fetchall() == [("run-2",)]
    assert pending_studies(con) == set(staged) and len(staged) > 20


def test_a_registry_batch_leaves_its_study_s_participants_to_their_deliveries(con, participant_resources):
    """Participants carry their study's nct_id; a batch restaging the study's registry resources alone (the
    site stage skipped, or not in the run) deleted them with the study's other resources."""
    nct = "NCT06668571"
    write_resources(con, "fhir", participant_resources, replace_studies=False, nct_id=nct)
    con.execute("INSERT INTO stage.ctgov_study VALUES (?)", [nct])
    con.execute("DELETE FROM stage_fhir.resource WHERE nct_id IS DISTINCT FROM ?", [nct])
    merge_fhir(con, "run-2")
    people = con.execute("SELECT resource_type, count(*), min(nct_id) FROM fhir.resource "
                         "WHERE resource_type IN ('Patient', 'ResearchSubject') GROUP BY 1 ORDER BY 1").fetchall()
    n = len(participant_resources) // 2
    assert people == [("Patient", n, nct), ("ResearchSubject", n, nct)]
    assert con.execute("SELECT count(*) FROM fhir.resource WHERE resource_type = 'ResearchStudy' AND nct_id = ?",
                       [nct]).fetchone()[0] >= 1
