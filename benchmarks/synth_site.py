"""Rows per second of site-delivery raw ingestion, against DuckDB's own CSV reader as a baseline.

Generates synthetic deliveries (trialhouse.synth_site), then, in a fresh warehouse each:
baseline: `read_csv(all_varchar)` of every CSV straight into a table (no contract, no checksums);
ingest: `ingest_site_deliveries` (checksums, row-by-row contract checks, JSON rows, one transaction
per delivery). The gap is the price of the contract.

    uv run python benchmarks/synth_site.py [--participants 2000] [--sites 4]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from schemas.sites import contract
from transforms.sites.ingest import ingest_site_deliveries
from trialhouse.synth_site import generate_delivery


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--participants", type=int, default=2000)
    ap.add_argument("--sites", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        folders = generate_delivery(root / "landing" / "sites", participants=args.participants, sites=args.sites, seed=1)
        gen = time.perf_counter() - t

        base = duckdb.connect(str(root / "baseline.duckdb"))
        t = time.perf_counter()
        rows = 0
        for kind in contract.CSV_KINDS:
            files = [str(f / f"{kind}.csv") for f in folders]
            # Identifiers come from the contract's kind list, not from input.
            base.execute(f"CREATE TABLE t_{kind} AS SELECT * FROM read_csv(?, all_varchar = true, header = true)", [files])
            rows += base.execute(f"SELECT count(*) FROM t_{kind}").fetchone()[0]
        baseline = time.perf_counter() - t

        con = duckdb.connect(str(root / "warehouse.duckdb"))
        t = time.perf_counter()
        summary = ingest_site_deliveries(con, root / "landing")
        ingest = time.perf_counter() - t
        t = time.perf_counter()
        again = ingest_site_deliveries(con, root / "landing")
        rerun = time.perf_counter() - t
        assert summary.loaded == len(folders) and sum(summary.rows.values()) == rows and again.unchanged == len(folders)

    print(f"{len(folders)} deliveries, {rows} rows (generated in {gen:.2f} s)")
    print(f"baseline read_csv all_varchar: {baseline:6.2f} s  {rows / baseline:10,.0f} rows/s")
    print(f"ingest_site_deliveries:        {ingest:6.2f} s  {rows / ingest:10,.0f} rows/s")
    print(f"rerun (no-op, hashes only):    {rerun:6.2f} s")


if __name__ == "__main__":
    main()
