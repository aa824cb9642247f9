"""Raw ingestion throughput on a bulk-download-shaped zip, against the cost of just reading it.

Builds a zip of N studies (the real records of tests/data/ctgov, each copy given its own NCT id so
every member is a distinct study), then times in the same run:
  baseline  read every member and json.loads it (the floor: no hashing, no database);
  ingest    transforms.ctgov.ingest.ingest_landing into a fresh DuckDB file (hash, key, batch insert).
Usage: uv run python benchmarks/raw_ingest.py [N]   (default 5000)
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transforms.ctgov.ingest import ingest_landing  # noqa: E402
from trialhouse.workfile import connect_work  # noqa: E402


def build_zip(path: Path, n: int) -> int:
    records = [json.loads(p.read_text()) for p in sorted((REPO / "tests/data/ctgov").glob("NCT*.json"))]
    size = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            rec = records[i % len(records)]
            rec["protocolSection"]["identificationModule"]["nctId"] = f"NCT{90000000 + i:08d}"
            data = json.dumps(rec)
            size += len(data)
            zf.writestr(f"ctg-studies/NCT{90000000 + i:08d}.json", data)
    return size


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "landing" / "ctgov").mkdir(parents=True)
        zpath = tmp / "landing" / "ctgov" / "ctg-studies.json.zip"
        raw_bytes = build_zip(zpath, n)
        print(f"zip: {n} studies, {raw_bytes / 1e6:.0f} MB of JSON, {zpath.stat().st_size / 1e6:.0f} MB compressed")

        t = time.perf_counter()
        with zipfile.ZipFile(zpath) as zf:
            for info in zf.infolist():
                json.loads(zf.read(info))
        base = time.perf_counter() - t
        print(f"baseline (read + json.loads only): {base:.2f} s, {n / base:,.0f} studies/s")

        con = connect_work(tmp / "w.duckdb", {"checkpoint_threshold": "1GB"})  # as the pipeline opens it
        t = time.perf_counter()
        s = ingest_landing(con, tmp / "landing")
        took = time.perf_counter() - t
        assert s.new_versions == n, s.as_dict()
        print(f"ingest (hash, key, insert into raw): {took:.2f} s, {n / took:,.0f} studies/s, "
              f"{took / base:.1f}x the baseline")
        t = time.perf_counter()
        ingest_landing(con, tmp / "landing")
        print(f"re-run over the same zip (skipped by its sha256): {time.perf_counter() - t:.3f} s")


if __name__ == "__main__":
    main()
