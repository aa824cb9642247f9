"""The DQD suite validates big staged tables in slices of primary-key ranges; it must reach the same
verdicts as on whole tables and evaluate every row once."""
import pytest

from expectations.omop_gate import validate_stage
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
