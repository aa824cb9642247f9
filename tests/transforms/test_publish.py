"""transforms/publish.py: the staging schemas a run without the registry's steps publishes from."""
import duckdb

from transforms.publish import ensure_stages


def test_ensure_stages_makes_the_missing_stages_keyless_and_keeps_what_is_staged():
    con = duckdb.connect()
    ensure_stages(con)
    tables = {r[0] for r in con.execute("SELECT schema_name || '.' || table_name FROM duckdb_tables()").fetchall()}
    assert {"stage_fhir.resource", "stage_omop.person", "stage_omop.death"} <= tables
    # as the OMOP stage makes them: a duplicate key fails the gate's isPrimaryKey rule, not the insert
    assert con.execute("SELECT count(*) FROM duckdb_constraints() WHERE schema_name = 'stage_omop' "
                       "AND constraint_type = 'PRIMARY KEY'").fetchone()[0] == 0
    con.execute("INSERT INTO stage_omop.person (person_id, gender_concept_id, year_of_birth, race_concept_id, "
                "ethnicity_concept_id) VALUES (1, 8507, 1970, 0, 0)")
    ensure_stages(con)  # staged rows stay
    assert con.execute("SELECT count(*) FROM stage_omop.person").fetchone()[0] == 1
