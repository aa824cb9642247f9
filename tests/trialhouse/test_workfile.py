"""The work file is attached at the warehouse's row group size by every writer (trialhouse.workfile)."""
import json
import os
import zipfile

import duckdb

from orchestration.resources import WarehouseResource
from tests.conftest import Landing, study_files
from transforms.ctgov import ingest
from trialhouse.settings import WAREHOUSE_ROW_GROUP
from trialhouse.workfile import connect_work

# As the pipeline's connection: a checkpoint only per 1 GB of WAL, so the WAL shows what a commit wrote.
CONFIG = {"checkpoint_threshold": "1GB"}


def row_groups(con, table: str) -> list[int]:
    return [r[0] for r in con.execute(
        "SELECT max(count) FROM pragma_storage_info(?) WHERE column_id = 0 GROUP BY row_group_id ORDER BY row_group_id",
        [table]).fetchall()]


def wal_bytes(path) -> int:
    wal = f"{path}.wal"
    return os.path.getsize(wal) if os.path.exists(wal) else 0


def fill(con, table: str, rows: int) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} (i BIGINT, s VARCHAR)")
    con.execute(f"INSERT INTO {table} SELECT range, repeat('x', 300) || range FROM range(?)", [rows])


def test_a_batch_of_whole_row_groups_is_written_into_the_file_not_the_wal(tmp_path):
    db = tmp_path / "w.duckdb"
    con = connect_work(db, CONFIG)
    fill(con, "t", 2 * WAREHOUSE_ROW_GROUP)  # ~5 MB of text
    assert wal_bytes(db) < 200_000, "the rows went through the WAL"
    con.close()
    con = connect_work(db, CONFIG)
    assert row_groups(con, "t") == [WAREHOUSE_ROW_GROUP, WAREHOUSE_ROW_GROUP]
    con.close()


def test_the_same_batch_at_duckdbs_default_size_goes_through_the_wal(tmp_path):
    """What the attach is for: without it the same insert is logged whole, and compressed again later."""
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db), config=CONFIG)
    fill(con, "t", 2 * WAREHOUSE_ROW_GROUP)
    assert wal_bytes(db) > 4_000_000
    con.close()


def test_a_later_writer_keeps_the_row_groups(tmp_path):
    db = tmp_path / "w.duckdb"
    with connect_work(db, CONFIG) as con:
        fill(con, "t", 3 * WAREHOUSE_ROW_GROUP)
    with connect_work(db, CONFIG) as con:
        fill(con, "other", 10)
        con.execute("CHECKPOINT")
    with connect_work(db, CONFIG) as con:
        assert row_groups(con, "t") == [WAREHOUSE_ROW_GROUP] * 3


def test_a_writer_at_another_size_rewrites_them(tmp_path):
    """Why every writer must attach the file here: DuckDB merges row groups smaller than its session's
    size at a checkpoint, a rewrite of every table, even untouched ones."""
    db = tmp_path / "w.duckdb"
    with connect_work(db, CONFIG) as con:
        fill(con, "t", 3 * WAREHOUSE_ROW_GROUP)
    with duckdb.connect(str(db)) as con:
        fill(con, "other", 10)
        con.execute("CHECKPOINT")
        assert row_groups(con, "t") == [3 * WAREHOUSE_ROW_GROUP]


def test_the_work_file_is_the_default_catalog_and_spills_beside_it(tmp_path):
    db = tmp_path / "w.duckdb"
    with connect_work(db, CONFIG) as con:
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.t AS SELECT 1 AS i")
        con.execute("CHECKPOINT")  # the attached file's, not the in-memory catalog's
        assert con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                           ).fetchone()[0] == str(db)
        assert con.execute("SELECT current_setting('temp_directory')").fetchone()[0] == f"{db}.tmp"
    with duckdb.connect(str(db), read_only=True) as con:  # readers open it any way they like
        assert con.execute("SELECT i FROM raw.t").fetchone()[0] == 1


def test_the_pipelines_connection_is_attached_at_the_row_group_size(tmp_path):
    w = WarehouseResource(database=str(tmp_path / "w.duckdb"), published=str(tmp_path / "p.duckdb"),
                          connection_config=CONFIG)
    with w.connect() as con:
        fill(con, "t", 2 * WAREHOUSE_ROW_GROUP)
        assert row_groups(con, "t") == [WAREHOUSE_ROW_GROUP, WAREHOUSE_ROW_GROUP]
    with w.connect() as con:
        fill(con, "other", 10)
    with w.connect() as con:
        assert row_groups(con, "t") == [WAREHOUSE_ROW_GROUP, WAREHOUSE_ROW_GROUP]


def test_raw_ingest_writes_its_batches_into_the_file(tmp_path, monkeypatch):
    """A bulk zip's versions are inserted a row group at a time, so they reach the file compressed as
    they are inserted, not the WAL (at 2,048 rows here, to keep the zip small)."""
    assert ingest.BATCH_SIZE == WAREHOUSE_ROW_GROUP  # the pipeline's batches are whole row groups
    size = 2048
    monkeypatch.setattr(ingest, "BATCH_SIZE", size)
    records = [json.loads(p.read_text()) for p in study_files()]
    landing = Landing(tmp_path / "landing")
    n, text = 2 * size + 5, 0
    path = landing.root / "ctgov" / "ctg-studies.json.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for i in range(n):
            rec = records[i % len(records)]
            rec["protocolSection"]["identificationModule"]["nctId"] = nct = f"NCT9{i:07d}"
            data = json.dumps(rec)
            text += len(data)
            zf.writestr(f"ctg-studies/{nct}.json", data)
    db = tmp_path / "w.duckdb"
    with connect_work(db, CONFIG, row_group_size=size) as con:
        summary = ingest.ingest_landing(con, landing.root, run_id="r")
        assert summary.new_versions == n
        assert wal_bytes(db) < text / 20, (wal_bytes(db), text)
        assert row_groups(con, "raw.ctgov_study_version") == [size, size, 5]


def test_quarantine_retry_keeps_the_row_groups(tmp_path):
    """`trialhouse quarantine retry` writes the work file outside a run: at DuckDB's default size its
    closing checkpoint would merge every table's row groups (the test above)."""
    from schemas import apply_sql, ensure_base_schemas
    from trialhouse import quarantine
    from trialhouse.settings import Settings
    from trialhouse.snapshot import work_path

    settings = Settings.from_env(warehouse=str(tmp_path / "wh.duckdb"))
    db = work_path(settings.warehouse)
    with connect_work(db, CONFIG) as con:
        ensure_base_schemas(con)
        apply_sql(con, "meta/meta.sql")
        fill(con, "t", 3 * WAREHOUSE_ROW_GROUP)
        con.execute("INSERT INTO quarantine.record (quarantined_at, source_file, record_key, source_record, suite, "
                    "rule, reason) VALUES (now(), 'a.json', 'NCT00000001', '', 'ctgov_registry', "
                    "'enum.overall_status', ?)", ["a.json: overallStatus = 'BOGUS'"])
    assert quarantine.release(settings)["records_released"] == 1
    with duckdb.connect(str(db), read_only=True) as con:
        assert row_groups(con, "t") == [WAREHOUSE_ROW_GROUP] * 3


def _threads(con) -> int:
    return con.execute("SELECT current_setting('threads')").fetchone()[0]


def test_single_threaded_gives_the_cores_to_the_workers_and_back(tmp_path):
    from trialhouse.workfile import single_threaded

    with connect_work(tmp_path / "w.duckdb", CONFIG) as con:
        default = _threads(con)
        with single_threaded(con, 1):
            assert _threads(con) == default  # no workers: DuckDB keeps its threads
        with single_threaded(con, 2):
            assert _threads(con) == 1
        assert _threads(con) == default
        try:
            with single_threaded(con, 2):
                raise RuntimeError("a failed stage")
        except RuntimeError:
            pass
        assert _threads(con) == default


def test_raw_ingest_of_a_zip_with_workers_writes_on_one_duckdb_thread(tmp_path, monkeypatch):
    records = [json.loads(p.read_text()) for p in study_files()]
    landing = Landing(tmp_path / "landing")
    path = landing.root / "ctgov" / "ctg-studies.json.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for rec in records:
            zf.writestr(f"ctg-studies/{rec['protocolSection']['identificationModule']['nctId']}.json", json.dumps(rec))
    seen = []
    flush = ingest._VersionWriter.flush

    def watched(self):
        seen.append(_threads(self.con))
        return flush(self)

    monkeypatch.setattr(ingest._VersionWriter, "flush", watched)
    with connect_work(tmp_path / "w.duckdb", CONFIG) as con:
        default = _threads(con)
        summary = ingest.ingest_landing(con, landing.root, run_id="r", workers=2)
        assert summary.new_versions == len(records)
        assert seen and set(seen) == {1} and _threads(con) == default
