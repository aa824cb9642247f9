"""The FHIR stage writes all its slices in one transaction: DuckDB then writes the appends to the
file in whole row groups, where a commit per slice sent every slice through the write-ahead log and
its checkpoints (~1.8x the time and ~1.5x the file, measured on 255 MB of resources)."""
import duckdb

from expectations import fhir_gate
from expectations.registry_gate import stage_registry
from expectations.runtime import GxRunner
from tests.raw_fixtures import raw_connection


def test_every_slice_of_the_stage_is_written_in_one_transaction(tmp_path, monkeypatch):
    con = raw_connection()
    con.execute(f"ATTACH '{tmp_path / 'w.duckdb'}' AS w")
    con.execute("COPY FROM DATABASE memory TO w")
    con.close()
    seen: list[int] = []
    real = fhir_gate.append_new_studies

    def recording(con, schema, rows, seq):
        seen.append(con.execute("SELECT txid_current()").fetchone()[0])
        return real(con, schema, rows, seq)

    monkeypatch.setattr(fhir_gate, "append_new_studies", recording)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        runner = GxRunner(None)
        stage_registry(con, runner, "run-1")
        result = fhir_gate.stage_fhir(con, runner, "run-1", chunk=5, workers=1)
        assert result.studies > 10 and len(seen) == -(-(result.studies + result.quarantined) // 5)
        assert len(set(seen)) == 1  # one transaction: a commit per slice gives each its own id
        assert con.execute("SELECT count(*) FROM stage_fhir.resource").fetchone()[0] == result.resources


class _Rows:
    def __init__(self, rows):
        self.rows = rows

    def fetchall(self):
        return self.rows


class _CountingReads:
    """A connection that counts the stage's payload reads and hands their rows back in reverse, as
    DuckDB may return a join's rows in any order without an ORDER BY."""

    def __init__(self, con):
        self.con, self.reads = con, 0

    def execute(self, sql, params=None):
        if sql is fhir_gate._SELECT:
            self.reads += 1
            return _Rows(self.con.execute(sql, params).fetchall()[::-1])
        return self.con.execute(sql, params)


def test_a_chunk_is_read_in_one_query_and_mapped_in_nct_id_order(tmp_path, monkeypatch):
    con = raw_connection()
    stage_registry(con, GxRunner(None), "run-1")
    ncts = [r[0] for r in con.execute("SELECT nct_id FROM stage.ctgov_study ORDER BY nct_id").fetchall()]
    monkeypatch.setattr(fhir_gate, "MAP_SLICE", 5)
    reading = _CountingReads(con)
    chunks = list(fhir_gate._mapped_chunks(reading, ncts, 12, workers=2))
    assert reading.reads == len(chunks) == -(-len(ncts) // 12)  # a query per chunk, not per slice of 5
    mapped = [m["nct_id"] for mc in chunks for m in mc.mapped] + [n for mc in chunks for n in mc.held]
    assert sorted(mapped) == ncts
    assert [m["nct_id"] for mc in chunks for m in mc.mapped] == sorted(m["nct_id"] for mc in chunks for m in mc.mapped)
