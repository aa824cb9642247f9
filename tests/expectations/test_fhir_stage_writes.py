"""The FHIR stage writes a validated chunk's rows while the next chunk maps.

Written all at once after the chunk's GX run, the rows kept the parent busy while the workers, with
only a few slices in flight, sat idle: the 20,000-study stage used 1.76 of the 2 cores, 1.85 with the
writes spread over the next chunk's slices (13.3 s against 14.2 s, mean of five runs each)."""
from expectations import fhir_gate
from expectations.registry_gate import stage_registry
from expectations.runtime import GxRunner
from tests.raw_fixtures import raw_connection


def test_a_chunks_rows_are_written_while_the_next_chunk_maps(monkeypatch):
    con = raw_connection()
    staged = stage_registry(con, GxRunner(), "run-1", chunk=4)
    events: list[tuple[str, object]] = []
    map_chunk, append = fhir_gate.map_chunk, fhir_gate.append_new_studies

    def mapping(rows):
        events.append(("map", frozenset(r[0] for r in rows)))
        return map_chunk(rows)

    def writing(con, schema, rows, seq, **kw):
        events.append(("write", frozenset(rows["emitted_by"])))
        return append(con, schema, rows, seq, **kw)

    monkeypatch.setattr(fhir_gate, "map_chunk", mapping)
    monkeypatch.setattr(fhir_gate, "append_new_studies", writing)
    result = fhir_gate.stage_fhir(con, GxRunner(), "run-1", chunk=4, workers=1)

    maps = [(i, ncts) for i, (kind, ncts) in enumerate(events) if kind == "map"]
    writes = [(i, ncts) for i, (kind, ncts) in enumerate(events) if kind == "write"]
    assert len(maps) >= 3 and len(writes) == len(maps)  # one write a chunk: no study of these is held
    for k, ((_, mapped), (at, written)) in enumerate(zip(maps, writes)):
        assert written <= mapped, events
        # written after the next chunk mapped, and before the one after that (one chunk waits at most)
        after = maps[k + 1][0] if k + 1 < len(maps) else maps[-1][0]
        before = maps[k + 2][0] if k + 2 < len(maps) else len(events)
        assert after < at < before, (k, events)
    # and every study that passed is staged, each once
    staged_ids = {n for (n,) in con.execute("SELECT DISTINCT nct_id FROM stage_fhir.resource "
                                            "WHERE nct_id IS NOT NULL").fetchall()}
    assert len(staged_ids) == result.studies and result.studies + result.quarantined == staged.staged


def test_with_mapping_workers_duckdb_writes_on_one_thread_and_gets_its_threads_back(monkeypatch):
    """While the workers map, they have the cores; DuckDB's second thread only competed with them (see
    trialhouse.workfile.single_threaded). The last chunk's slices are written after the workers are
    gone, with DuckDB's threads back, and the connection ends as it was."""
    con = raw_connection()
    stage_registry(con, GxRunner(), "run-1", chunk=4)
    threads = "SELECT current_setting('threads')"
    default = con.execute(threads).fetchone()[0]
    seen = []
    append = fhir_gate.append_new_studies

    def writing(con, schema, rows, seq, **kw):
        seen.append(con.execute(threads).fetchone()[0])
        return append(con, schema, rows, seq, **kw)

    monkeypatch.setattr(fhir_gate, "append_new_studies", writing)
    fhir_gate.stage_fhir(con, GxRunner(), "run-1", chunk=4, workers=2)
    assert seen[0] == 1 and seen[-1] == default and seen == sorted(seen)
    assert con.execute(threads).fetchone()[0] == default


def _collector_state() -> tuple[int, tuple[int, int, int], bool]:
    import gc

    from transforms.fhir import rule_schema

    return gc.get_freeze_count(), gc.get_threshold(), rule_schema.validator.cache_info().currsize == 1


def test_a_mapping_worker_starts_with_the_validator_compiled_and_frozen():
    """The long-lived R5 schema and rule tables are moved out of the collector's way in each worker
    (fhir_gate.worker_start), so its full collections no longer walk them; the run process is left as is."""
    import gc
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=fhir_gate.worker_start) as pool:
        frozen, threshold, compiled = pool.submit(_collector_state).result()
    assert frozen > 100_000 and threshold == (10_000, 10, 10) and compiled
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:  # a plain worker, for contrast
        frozen, threshold, compiled = pool.submit(_collector_state).result()
    assert frozen == 0 and threshold == gc.get_threshold() and not compiled


def test_the_whole_stage_writes_in_one_transaction(monkeypatch):
    """Every slice's rows go in under one transaction id (committed a slice at a time, all the staged
    JSON went through the WAL as well: 296 MB of it after 20,000 studies), and it is committed at the end."""
    from transforms.omop._db import in_transaction

    con = raw_connection()
    stage_registry(con, GxRunner(), "run-1", chunk=4)
    seen = []
    append = fhir_gate.append_new_studies

    def writing(con, schema, rows, seq, **kw):
        seen.append((in_transaction(con), con.execute("SELECT txid_current()").fetchone()[0]))
        return append(con, schema, rows, seq, **kw)

    monkeypatch.setattr(fhir_gate, "append_new_studies", writing)
    fhir_gate.stage_fhir(con, GxRunner(), "run-1", chunk=4, workers=1)
    assert len(seen) >= 3 and all(inside for inside, _ in seen) and len({tx for _, tx in seen}) == 1
    assert not in_transaction(con)


def test_a_stage_that_fails_midway_leaves_the_last_stage_and_quarantine_as_they_were(monkeypatch):
    con = raw_connection()
    stage_registry(con, GxRunner(), "run-1", chunk=4)
    first = fhir_gate.stage_fhir(con, GxRunner(), "run-1", chunk=4, workers=1)
    tables = ["stage_fhir.resource", "quarantine.record", "quarantine.rule_result", "meta.study_state"]
    before = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}
    assert before["stage_fhir.resource"] and first.studies > 8
    append, calls = fhir_gate.append_new_studies, []

    def failing(con, schema, rows, seq, **kw):
        calls.append(seq)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return append(con, schema, rows, seq, **kw)

    monkeypatch.setattr(fhir_gate, "append_new_studies", failing)
    try:
        fhir_gate.stage_fhir(con, GxRunner(), "run-2", chunk=4, workers=1)
    except RuntimeError as exc:
        assert str(exc) == "disk full"
    else:
        raise AssertionError("the stage did not fail")
    assert {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables} == before


class _Counting:
    """A connection that counts the stage's payload queries and the rows each returned."""

    def __init__(self, con):
        self._con, self.payload_rows = con, []

    def execute(self, sql, *args):
        cur = self._con.execute(sql, *args)
        if sql == fhir_gate._SELECT:
            rows = cur.fetchall()
            self.payload_rows.append(len(rows))
            return _Rows(rows)
        return cur

    def __getattr__(self, name):
        return getattr(self._con, name)


class _Rows:
    def __init__(self, rows):
        self._rows = rows

    def fetchall(self):
        return self._rows


def test_payloads_are_read_a_fetch_slice_at_a_time_and_mapped_a_map_slice_at_a_time(monkeypatch):
    """A query per mapped slice of 500 cost the run process 35-44 us a study, one per 2,000 22-24."""
    con = raw_connection()
    staged = stage_registry(con, GxRunner(), "run-1", chunk=4)
    monkeypatch.setattr(fhir_gate, "MAP_SLICE", 2)
    monkeypatch.setattr(fhir_gate, "FETCH_SLICE", 4)
    counting = _Counting(con)
    result = fhir_gate.stage_fhir(counting, GxRunner(), "run-1", chunk=12, workers=2)
    n = staged.staged  # 32 studies: chunks of 12, 12, 8, each read 4 at a time
    assert counting.payload_rows == [4] * (n // 4) and result.studies + result.quarantined == n
    assert con.execute("SELECT count(DISTINCT nct_id) FROM stage_fhir.resource").fetchone()[0] == result.studies


def test_a_staged_study_without_its_raw_version_stops_the_stage_by_name():
    con = raw_connection()
    stage_registry(con, GxRunner(), "run-1", chunk=4)
    gone = con.execute("SELECT nct_id, version_key FROM stage.ctgov_study ORDER BY nct_id LIMIT 1 OFFSET 5").fetchone()
    con.execute("DELETE FROM raw.ctgov_study_version WHERE version_key = ?", [gone[1]])
    try:
        fhir_gate.stage_fhir(con, GxRunner(), "run-1", chunk=12, workers=2)
    except RuntimeError as exc:
        assert gone[0] in str(exc)
    else:
        raise AssertionError("the stage went on with a study missing")


def test_a_study_the_mapping_did_not_foresee_is_held_not_a_crash_of_the_stage(monkeypatch):
    """A record the registry suite let through but the mapping fails on in a way it did not foresee (not
    a MappingError) is quarantined with what went wrong; the batch's other studies are staged."""
    con = raw_connection()
    stage_registry(con, GxRunner(), "run-1", chunk=4)
    ncts = [n for (n,) in con.execute("SELECT nct_id FROM stage.ctgov_study ORDER BY nct_id").fetchall()]
    odd = ncts[1]
    map_study = fhir_gate.map_study

    def mapping(record, **kw):
        if record["protocolSection"]["identificationModule"]["nctId"] == odd:
            raise KeyError("leadSponsor")
        return map_study(record, **kw)

    monkeypatch.setattr(fhir_gate, "map_study", mapping)
    result = fhir_gate.stage_fhir(con, GxRunner(), "run-1", chunk=4, workers=1)

    assert result.quarantined == 1 and result.studies == len(ncts) - 1
    rule, field, reason = con.execute("SELECT rule, field, reason FROM quarantine.record WHERE suite = 'fhir_staging'").fetchone()
    assert (rule, field) == ("mappable", "$") and odd in reason and "KeyError: 'leadSponsor'" in reason
    staged = {n for (n,) in con.execute("SELECT DISTINCT nct_id FROM stage_fhir.resource WHERE nct_id IS NOT NULL").fetchall()}
    assert staged == set(ncts) - {odd}
