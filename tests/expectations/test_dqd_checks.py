"""DQD checks: clean on the mapped real records, and catching violations planted on purpose."""

from __future__ import annotations

import pytest

from expectations.dqd.checks import ALL_CHECKS, FATAL_CHECKS, CheckResult, failures, run_dqd
from schemas.omop.spec import cdm_tables


def test_fatal_checks_pass_on_all_real_records(mapped_con):
    results = run_dqd(mapped_con, "omop", set(FATAL_CHECKS))
    assert {r.check_name for r in results} == FATAL_CHECKS
    assert failures(results) == []
    assert sum(r.violated for r in results) == 0
    # the trial tables were really checked, not skipped
    checked = {(r.check_name, r.table) for r in results}
    for table in ("location", "care_site", "provider", "metadata", "cohort_definition", "source_to_concept_map"):
        assert ("isRequired", table) in checked
    assert ("isForeignKey", "care_site") in checked and ("isForeignKey", "provider") in checked


def test_all_implemented_checks_pass_on_real_records(mapped_con):
    results = run_dqd(mapped_con, "omop")
    assert {r.check_name for r in results} == ALL_CHECKS
    assert failures(results) == []


def test_unknown_check_rejected(mapped_con):
    with pytest.raises(ValueError):
        run_dqd(mapped_con, "omop", {"isRequired", "noSuchCheck"})


@pytest.fixture
def planted(mapped_con):
    """A copy of the mapped schema without constraints (as data staged elsewhere could be), to plant faults in."""
    mapped_con.execute("DROP SCHEMA IF EXISTS bad CASCADE")
    mapped_con.execute("CREATE SCHEMA bad")
    for table in cdm_tables():
        mapped_con.execute(f"CREATE TABLE bad.{table} AS SELECT * FROM omop.{table}")
    yield mapped_con
    mapped_con.execute("DROP SCHEMA bad CASCADE")


def _find(results: list[CheckResult], check: str, table: str, field: str | None) -> CheckResult:
    (hit,) = [r for r in results if (r.check_name, r.table, r.field) == (check, table, field)]
    return hit


def test_planted_violations_are_caught(planted):
    con = planted
    loc_id, cs_id = con.execute("SELECT location_id, care_site_id FROM bad.care_site ORDER BY 2 LIMIT 1").fetchone()
    # NULL in a required column
    con.execute("UPDATE bad.metadata SET name = NULL WHERE metadata_id = (SELECT min(metadata_id) FROM bad.metadata)")
    # duplicate primary key
    con.execute("INSERT INTO bad.care_site SELECT * FROM bad.care_site WHERE care_site_id = ?", [cs_id])
    # dangling foreign keys: a care site without its location, a concept id that does not exist
    con.execute("DELETE FROM bad.location WHERE location_id = ?", [loc_id])
    con.execute("UPDATE bad.metadata SET value_as_concept_id = 999999999 WHERE metadata_id = "
                "(SELECT max(metadata_id) FROM bad.metadata)")
    # a start after its end
    con.execute("UPDATE bad.concept SET valid_start_date = DATE '2100-01-01' WHERE concept_id = 4152280")
    results = run_dqd(con, "bad")
    failed = {(r.check_name, r.table, r.field) for r in failures(results)}
    assert failed == {
        ("isRequired", "metadata", "name"),
        ("isPrimaryKey", "care_site", "care_site_id"),
        ("isForeignKey", "care_site", "location_id"),
        ("isForeignKey", "metadata", "value_as_concept_id"),
        ("plausibleStartBeforeEnd", "concept", "valid_start_date"),
    }
    dup = _find(results, "isPrimaryKey", "care_site", "care_site_id")
    assert dup.violated == 2 and dup.examples == [str(cs_id), str(cs_id)]
    fk = _find(results, "isForeignKey", "care_site", "location_id")
    assert fk.violated == 2 and str(cs_id) in fk.examples and fk.threshold == 0 and fk.pct > 0
    assert _find(results, "isRequired", "metadata", "name").violated == 1


def test_missing_table_field_and_wrong_datatype(planted):
    con = planted
    con.execute("DROP TABLE bad.note_nlp")
    con.execute("ALTER TABLE bad.provider DROP COLUMN dea")
    con.execute("ALTER TABLE bad.location ALTER COLUMN country_concept_id TYPE VARCHAR")
    con.execute("UPDATE bad.location SET country_concept_id = '1.5' WHERE location_id = (SELECT min(location_id) FROM bad.location)")
    failed = {(r.check_name, r.table, r.field) for r in failures(run_dqd(con, "bad", set(FATAL_CHECKS)))}
    assert ("cdmTable", "note_nlp", None) in failed
    assert ("cdmField", "provider", "dea") in failed
    assert ("cdmDatatype", "location", "country_concept_id") in failed
    assert ("isForeignKey", "location", "country_concept_id") in failed  # '1.5' is no concept either
    assert not any(t == "note_nlp" and c != "cdmTable" for c, t, _ in failed)


def test_fk_domain_and_standard_concept(planted):
    con = planted
    # a Drug concept where a Geography one is expected, and a non-standard concept in a standard field
    con.execute("UPDATE bad.location SET country_concept_id = 19079524 WHERE location_id = (SELECT min(location_id) FROM bad.location)")
    con.execute("UPDATE bad.source_to_concept_map SET target_concept_id = 40316773 "
                "WHERE source_code = (SELECT min(source_code) FROM bad.source_to_concept_map)")
    failed = {(r.check_name, r.table, r.field) for r in failures(run_dqd(con, "bad", {"fkDomain", "isStandardValidConcept"}))}
    assert failed == {
        ("fkDomain", "location", "country_concept_id"),  # 19079524 is a standard Drug concept
        ("isStandardValidConcept", "source_to_concept_map", "target_concept_id"),
    }


def test_catalog_inverted_cohort_fk_checks_cdm_direction(planted):
    con = planted
    con.execute("INSERT INTO bad.cohort VALUES (987654, 1, DATE '2025-01-01', DATE '2025-02-01')")
    fk = [r for r in run_dqd(con, "bad", {"isForeignKey"}) if r.field == "cohort_definition_id"]
    assert len(fk) == 1 and fk[0].table == "cohort" and fk[0].failed and fk[0].examples == ["987654"]


def test_stage_schema_checked_against_published_vocabulary(mapped_con):
    """Map into stage_omop reading the vocabulary of omop; DQD resolves concept references there too."""
    from transforms.omop.trials import map_trials

    map_trials(mapped_con, schema="stage_omop", vocab_schema="omop")
    assert mapped_con.execute("SELECT count(*) FROM stage_omop.concept").fetchone()[0] == 0
    same = "SELECT * FROM {}.metadata EXCEPT SELECT * FROM {}.metadata"
    assert mapped_con.execute(same.format("stage_omop", "omop")).fetchall() == []
    results = run_dqd(mapped_con, "stage_omop", set(FATAL_CHECKS) | {"fkDomain", "isStandardValidConcept"}, vocab_schema="omop")
    assert failures(results) == []
    assert any(r.check_name == "isForeignKey" and r.table == "metadata" and r.field == "metadata_type_concept_id"
               for r in results)
    # without the vocabulary schema the same stage schema has dangling concept references
    assert any(r.check_name == "isForeignKey" for r in failures(run_dqd(mapped_con, "stage_omop", {"isForeignKey"})))
    mapped_con.execute("DROP SCHEMA stage_omop CASCADE")
