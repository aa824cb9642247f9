"""The DQD suite validates big staged tables in slices of primary-key ranges; it must reach the same
verdicts as on whole tables and evaluate every row once."""
import pytest

from expectations.omop_gate import validate_stage
from expectations.registry_gate import stage_registry
from expectations.runtime import GxRunner
from schemas import ensure_base_schemas
from tests.raw_fixtures import raw_connection
from transforms.omop.trials import map_trials
from transforms.omop.vocabulary import load_vocabulary


@pytest.fixture(scope="module")
def planted():
    con = raw_connection()
    ensure_base_schemas(con)
    load_vocabulary(con, "omop")
    map_trials(con, schema="stage_omop", vocab_schema="omop")
    # a fact in the last slice naming a concept that does not exist, an investigator at a care site that does not
    con.execute("UPDATE stage_omop.metadata SET metadata_concept_id = 2147000000 "
                "WHERE metadata_id = (SELECT max(metadata_id) FROM stage_omop.metadata)")
    con.execute("UPDATE stage_omop.provider SET care_site_id = 987654321 "
                "WHERE provider_id = (SELECT min(provider_id) FROM stage_omop.provider)")
    yield con
    con.close()


def test_sliced_validation_reaches_the_whole_table_verdicts(planted):
    rows = planted.execute("SELECT count(*) FROM stage_omop.metadata").fetchone()[0]
    whole = validate_stage(planted, GxRunner(), "whole")
    sliced = validate_stage(planted, GxRunner(), "sliced", slice_rows=max(2, rows // 7))
    verdicts = {r.rule.id: r.success for r in whole.results}
    assert verdicts == {r.rule.id: r.success for r in sliced.results}
    failed = {rule for rule, ok in verdicts.items() if not ok}
    assert {"isForeignKey.metadata.metadata_concept_id", "isForeignKey.provider.care_site_id"} <= failed
    by_rule = {r.rule.id: r for r in sliced.results}
    assert by_rule["isPrimaryKey.metadata.metadata_id"].evaluated == rows  # every row, once
    assert planted.execute("SELECT count(DISTINCT run_id) FROM quarantine.rule_result").fetchone()[0] == 2


def _part_schema(con):
    return (con.execute("SELECT table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
                        "WHERE schema_name = 'stage_omop_part' ORDER BY ALL").fetchall(),
            con.execute("SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints() "
                        "WHERE schema_name = 'stage_omop_part' ORDER BY ALL").fetchall())


def test_the_stage_drops_the_part_tables_between_chunks_and_checkpoints_as_it_goes(monkeypatch):
    """A chunk's part tables are dropped and re-created, not emptied by DELETE: DuckDB kept every chunk's
    deleted rows in memory it cannot evict until a checkpoint, and the 600,000-study stage ran out of its
    512 MB cap. A checkpoint every CHECKPOINT_CHUNKS chunks bounds the staged tables' key indexes."""
    from expectations import omop_gate

    con = raw_connection()
    ensure_base_schemas(con)
    load_vocabulary(con, "omop")
    stage_registry(con, GxRunner(None), "run-1", workers=1)
    seen: list[str] = []
    parts: list[tuple] = []

    class Spy:
        def __init__(self, c):
            self._c = c

        def execute(self, sql, *args):
            seen.append(" ".join(sql.split()))
            if sql.startswith("CREATE OR REPLACE TEMP TABLE _omop_chunk"):
                parts.append(_part_schema(self._c))
            self._c.execute(sql, *args)
            return self

        def __getattr__(self, name):
            return getattr(self._c, name)

    monkeypatch.setattr(omop_gate, "CHECKPOINT_CHUNKS", 2)
    omop_gate.stage_trials(Spy(con), GxRunner(), "run-1", chunk=3)
    chunks = sum(s.startswith("CREATE OR REPLACE TEMP TABLE _omop_chunk") for s in seen)
    assert chunks >= 5
    emptied = [s for s in seen if s.startswith('DELETE FROM "stage_omop_part"') and " WHERE " not in s]
    assert set(emptied) <= {'DELETE FROM "stage_omop_part".cdm_source'}  # its one row, replaced by map_cdm_source
    assert sum(s.startswith('DROP TABLE "stage_omop_part"') for s in seen) >= chunks - 1
    assert seen.count("CHECKPOINT") == chunks // 2
    assert all(p == parts[1] for p in parts[1:])  # re-created as the DDL makes them: columns, types, keys
    assert any(c[1] == "PRIMARY KEY" for c in parts[1][1])
