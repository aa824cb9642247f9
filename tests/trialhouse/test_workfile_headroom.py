"""The publish's memory: DuckDB pins ~0.3 MiB per row group a delete touches until the connection
closes, so a batch spread over a big warehouse needs more than the configured limit; the work file's
connections add it (trialhouse.workfile.delete_headroom)."""
import duckdb
import pytest

from orchestration.quality.publish import merge_fhir
from schemas import apply_sql, ensure_base_schemas
from transforms.fhir.store import create_fhir_schema
from transforms.publish import publish_batch
from trialhouse.settings import WAREHOUSE_ROW_GROUP
from trialhouse.workfile import DELETE_BYTES_PER_ROW_GROUP, _limit_bytes, connect_work, delete_headroom

STUDIES = 60_000  # 12 resources each: 720,000 rows, 88 row groups of the work file's size
SPREAD = 600  # studies in the batch, every 100th: one in each ~1.4 row groups


def _warehouse(path, limit: str):
    """A work file whose published fhir.resource is big and whose batch replaces studies spread over it."""
    con = connect_work(path, {"memory_limit": limit})
    ensure_base_schemas(con)
    apply_sql(con, "meta/meta.sql")
    create_fhir_schema(con, "fhir")
    create_fhir_schema(con, "stage_fhir")
    con.execute("INSERT INTO fhir.resource SELECT 'Group', 'g' || i, '1', NULL, 'NCT' || lpad((i // 12)::VARCHAR, 8, '0'), "
                "'{\"resourceType\": \"Group\"}' FROM range(?) r(i)", [STUDIES * 12])
    con.execute("CREATE SCHEMA IF NOT EXISTS stage")
    con.execute("CREATE TABLE stage.ctgov_study AS SELECT 'NCT' || lpad((s * 100)::VARCHAR, 8, '0') AS nct_id, "
                "'h' AS content_hash FROM range(?) r(s)", [SPREAD])
    con.execute("CREATE TABLE stage.ctgov_candidate AS SELECT * FROM stage.ctgov_study")
    con.execute("INSERT INTO stage_fhir.resource SELECT 'Group', 'g' || (s * 1200), '2', NULL, "
                "'NCT' || lpad((s * 100)::VARCHAR, 8, '0'), '{\"resourceType\": \"Group\"}' FROM range(?) r(s)", [SPREAD])
    con.close()
    return connect_work(path, {"memory_limit": limit})  # its limit raised by the published tables' row groups


def test_headroom_counts_the_row_groups_of_the_tables_a_publish_deletes_from(tmp_path):
    con = _warehouse(str(tmp_path / "w.duckdb"), "1GB")
    groups = -(-STUDIES * 12 // WAREHOUSE_ROW_GROUP)
    # fhir.resource's row groups; study_state and quarantine are empty, staging tables do not count
    assert delete_headroom(con) == groups * DELETE_BYTES_PER_ROW_GROUP
    limit = _limit_bytes(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
    assert abs(limit - (10**9 + groups * DELETE_BYTES_PER_ROW_GROUP)) < 2**20, limit  # 1 GB and the headroom
    con.execute("INSERT INTO meta.study_state SELECT nct_id, content_hash, 'published', 'r', now() FROM stage.ctgov_study")
    assert delete_headroom(con) == (groups + 1) * DELETE_BYTES_PER_ROW_GROUP
    empty = connect_work(str(tmp_path / "empty.duckdb"), {"memory_limit": "64MB"})
    create_fhir_schema(empty, "fhir")
    assert delete_headroom(empty) == 0  # a full load into empty tables
    assert empty.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "61.0 MiB"  # 64 MB as given


def test_without_headroom_the_spread_deletes_run_out_of_memory(tmp_path):
    """What the publish did before: the deletes pin ~25 MiB here, the limit is 16 MB."""
    path = str(tmp_path / "w.duckdb")
    _warehouse(path, "16MB").close()
    con = duckdb.connect(config={"memory_limit": "16MB"})
    con.execute(f"ATTACH '{path}' AS w (ROW_GROUP_SIZE {WAREHOUSE_ROW_GROUP})")  # the path is pytest's
    con.execute("USE w")
    con.execute("BEGIN")
    with pytest.raises(duckdb.OutOfMemoryException):
        con.execute("DELETE FROM fhir.resource WHERE nct_id IN (SELECT nct_id FROM stage.ctgov_study)")
        con.execute("DELETE FROM fhir.resource WHERE (resource_type, id) IN (SELECT resource_type, id FROM stage_fhir.resource)")


def test_a_batch_spread_over_the_warehouse_publishes_under_a_tight_limit(tmp_path):
    """Found at 600,000 studies: a day's update of 6,000 ran the publish out of its 512 MB."""
    con = _warehouse(str(tmp_path / "w.duckdb"), "16MB")
    log = publish_batch(con, "run-1", [], [merge_fhir])
    assert log["studies_published"] == SPREAD
    assert con.execute("SELECT count(*) FROM fhir.resource WHERE version_id = '2'").fetchone()[0] == SPREAD
    assert con.execute("SELECT count(*) FROM fhir.resource").fetchone()[0] == STUDIES * 12 - SPREAD * 11
    # checkpointed within the raised limit, before the connection closes: a connection opened at the
    # tight limit has nothing left to write
    wal = tmp_path / "w.duckdb.wal"
    assert not wal.exists() or wal.stat().st_size == 0
    con.close()
    again = connect_work(str(tmp_path / "w.duckdb"), {"memory_limit": "16MB"})
    again.execute("CHECKPOINT")
    assert again.execute("SELECT count(*) FROM fhir.resource WHERE version_id = '2'").fetchone()[0] == SPREAD


def test_a_reading_block_runs_at_the_configured_limit_then_gets_the_headroom_back(tmp_path):
    """The export reads the whole FHIR table and deletes nothing: under the raised limit DuckDB kept
    what it read as cache (600,000 studies: 1,659 MiB resident against 798)."""
    from trialhouse.workfile import without_headroom

    con = _warehouse(str(tmp_path / "w.duckdb"), "64MB")
    raised = _limit_bytes(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
    assert raised > 64 * 10**6
    with without_headroom(con):
        inside = _limit_bytes(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
    assert abs(inside - 64 * 10**6) < 2**20
    assert _limit_bytes(con.execute("SELECT current_setting('memory_limit')").fetchone()[0]) == raised
