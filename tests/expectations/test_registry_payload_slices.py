"""The registry stage reads a chunk's payloads a slice at a time, so DuckDB's memory cap holds at
registry scale: a query's result is held in DuckDB's pool until it is fetched (and sorting a whole
20,000-study chunk's payloads for an ORDER BY took ~2.5 times their bytes, which ran the
600,000-study corpus out of the 512 MB cap). Here the whole 60 MB chunk in one query runs out of
the 64 MB cap, slices of 10 studies do not."""
import json
import os

import duckdb

from expectations import registry_gate
from expectations.runtime import GxRunner
from tests.raw_fixtures import CTGOV, REPO, SEED, insert_raw


def test_a_chunk_larger_than_duckdbs_cap_is_read_a_slice_at_a_time(tmp_path, monkeypatch):
    seed = json.loads((CTGOV / f"{SEED}.json").read_text())
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute((REPO / "schemas" / "raw" / "raw.sql").read_text())
        for i in range(60):  # 60 studies of ~1 MB each: more than the cap below holds at once
            rec = json.loads(json.dumps(seed))
            rec["protocolSection"]["identificationModule"]["nctId"] = f"NCT9{i:07d}"
            rec["protocolSection"].setdefault("descriptionModule", {})["detailedDescription"] = os.urandom(500_000).hex()
            insert_raw(con, rec, "big.json", f"$[{i}]")
    monkeypatch.setattr(registry_gate, "PAYLOAD_SLICE", 10)
    with duckdb.connect(str(path), config={"memory_limit": "64MB"}) as con:  # fresh: nothing held yet
        result = registry_gate.stage_registry(con, GxRunner(None), "run-1", chunk=60)
        assert result.candidates == 60
        assert con.execute("SELECT count(*) FROM stage.ctgov_study").fetchone()[0] == result.staged
        assert result.staged + result.quarantined == 60
