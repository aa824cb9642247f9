"""The registry stage parses and flattens records in worker processes once the batch is larger than a
slice: that was half the run process's time in the stage (20,000 studies: 3.9 s of CPU there, 2.2-2.5 s
with two workers; the stage 3.87-3.94 s against 3.51-4.68 s, median 3.56 s, pool start included, five
runs each). What it stages, holds and decides must not change."""
import json
import math
from concurrent.futures import ProcessPoolExecutor

import pandas as pd

from expectations import registry_gate
from expectations.runtime import GxRunner
from tests.raw_fixtures import CTGOV, SEED, insert_raw, raw_connection
from transforms.ctgov.flatten import registry_frames
from transforms.ctgov.records import parse_payload


def _stage(monkeypatch, workers: int):
    con = raw_connection()
    bad = json.loads((CTGOV / f"{SEED}.json").read_text())  # held by a record rule, in the middle of the ids
    bad["protocolSection"]["identificationModule"]["nctId"] = "NCT04000000"
    bad["protocolSection"]["statusModule"]["overallStatus"] = "BOGUS"
    insert_raw(con, bad, "bad.json")
    submitted: list[str] = []

    class Counting(ProcessPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            submitted.append(fn.__name__)
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(registry_gate, "ProcessPoolExecutor", Counting)
    monkeypatch.setattr(registry_gate, "FLATTEN_SLICE", 3)
    result = registry_gate.stage_registry(con, GxRunner(None), "run-1", chunk=8, workers=workers)
    tables = {name: con.execute(sql).fetchall() for name, sql in {
        "staged": "SELECT * FROM stage.ctgov_study ORDER BY nct_id",
        "held": "SELECT record_key, rule, field, reason FROM quarantine.record ORDER BY ALL",
        "verdicts": "SELECT rule, failed FROM quarantine.rule_result ORDER BY ALL",
    }.items()}
    verdicts = [(r.rule.id, r.success, len(r.unexpected)) for r in result.suite.results]
    return result, tables, verdicts, submitted


def test_workers_stage_hold_and_decide_as_the_run_process_does(monkeypatch):
    one = _stage(monkeypatch, 1)
    two = _stage(monkeypatch, 2)
    assert not one[3]
    assert two[3] == ["flatten_slice"] * sum(math.ceil(n / 3) for n in _chunk_sizes(one[0].candidates, 8))
    assert ("NCT04000000", "enum.overall_status") in {h[:2] for h in one[1]["held"]}
    assert one[1] == two[1] and one[2] == two[2]
    assert (one[0].candidates, one[0].staged, one[0].quarantined) == (two[0].candidates, two[0].staged,
                                                                       two[0].quarantined)


def _chunk_sizes(n: int, chunk: int) -> list[int]:
    return [min(chunk, n - i) for i in range(0, n, chunk)]


def test_slices_frames_join_into_the_frame_of_all_their_rows():
    """One slice can have a column empty or all None (object dtype) where the whole chunk has numbers."""
    rows = [{"version_key": i, "nct_id": p.stem, "source_file": p.name, "source_record": "",
             "content_hash": str(i), "record": parse_payload(p.read_text())}
            for i, p in enumerate(sorted(CTGOV.glob("NCT*.json")))]
    rows[0]["record"]["protocolSection"]["contactsLocationsModule"].pop("locations", None)  # no site rows
    for site in rows[1]["record"]["protocolSection"]["contactsLocationsModule"]["locations"]:
        site.pop("geoPoint", None)  # latitude and longitude all None
    whole = registry_frames(rows)
    parts = [registry_frames([r]) for r in rows]
    assert len(parts[0]["site"]) == 0 and parts[1]["site"]["latitude"].dtype == object
    assert whole["site"]["latitude"].dtype == float
    for name, frame in whole.items():
        pd.testing.assert_frame_equal(registry_gate._concat([p[name] for p in parts]), frame, obj=name)


def test_gx_validates_a_chunk_while_the_next_one_is_read_and_flattened(monkeypatch):
    """The workers sat idle through each chunk's GX run; now it runs in a thread while the next chunk's
    payloads are read and flattened. A chunk's validation waits here until the next chunk's reading has
    begun: run one after the other, it never would (each wait times out)."""
    import threading

    con = raw_connection()
    n_studies = con.execute("SELECT count(DISTINCT nct_id) FROM raw.ctgov_study_version").fetchone()[0]
    chunks = math.ceil(n_studies / 8)
    assert chunks >= 3
    read = [threading.Event() for _ in range(chunks)]  # read[i]: chunk i's payloads began to be read
    overlapped: list[bool] = []
    slices = registry_gate._slices

    def reading(con_, ncts):
        read[sum(e.is_set() for e in read)].set()
        return slices(con_, ncts)

    class Waiting(GxRunner):
        def validate(self, *args, **kwargs):
            i = len(overlapped)
            overlapped.append(read[i + 1].wait(3) if i + 1 < chunks else True)
            return super().validate(*args, **kwargs)

    monkeypatch.setattr(registry_gate, "_slices", reading)
    monkeypatch.setattr(registry_gate, "FLATTEN_SLICE", 3)
    result = registry_gate.stage_registry(con, Waiting(None), "run-1", chunk=8, workers=2)
    assert len(overlapped) == chunks and all(overlapped), overlapped
    assert result.staged + result.quarantined == result.candidates
