"""Merging a gated OMOP batch into the published schema (transforms/omop/publish.py)."""
import datetime as dt

from transforms.omop.cdm_source import DESCRIPTION
from schemas.omop.ddl import create_omop_schema
from transforms.omop.publish import merge_stage


def _cdm_source(con, schema: str, released: str, vocabulary: str) -> None:
    cols = dict(DESCRIPTION, source_release_date=dt.date.fromisoformat(released), cdm_release_date=dt.date(2026, 11, 30),
                vocabulary_version=vocabulary)
    con.execute(f"INSERT INTO {schema}.cdm_source ({', '.join(cols)}) VALUES ({', '.join('$' + c for c in cols)})", cols)


def test_an_update_of_an_older_study_does_not_move_the_source_release_date_back(raw_con):
    """A day's update may be one study last posted in 2025 on a warehouse whose newest study is from
    2026: `cdm_source` takes the batch's description, but its source release date stays the newest."""
    for schema in ("omop", "stage_omop"):
        create_omop_schema(raw_con, schema)
    raw_con.execute("CREATE TEMP TABLE batch AS SELECT 'NCT00000001' AS nct_id")
    _cdm_source(raw_con, "omop", "2026-04-09", "v5.0 old")
    _cdm_source(raw_con, "stage_omop", "2025-06-30", "v5.0 new")
    merge_stage(raw_con, "stage_omop", "omop", "batch")
    assert raw_con.execute("SELECT source_release_date, vocabulary_version FROM omop.cdm_source").fetchall() == [
        (dt.date(2026, 4, 9), "v5.0 new")]

    _cdm_source(raw_con, "stage_omop", "2026-05-01", "v5.0 new")  # a newer batch moves it on
    raw_con.execute("DELETE FROM stage_omop.cdm_source WHERE source_release_date < DATE '2026-05-01'")
    merge_stage(raw_con, "stage_omop", "omop", "batch")
    assert raw_con.execute("SELECT source_release_date FROM omop.cdm_source").fetchall() == [(dt.date(2026, 5, 1),)]
