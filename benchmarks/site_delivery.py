"""Site participant data end to end: generate -> ingest -> gate -> map, rows per second per stage.

Synthetic deliveries only (trialhouse.synth_site). The baseline, measured in the same run on the
same files, is DuckDB's own `read_csv` of every CSV of the deliveries (all varchar): the least any
stage that reads the rows must spend. Each stage is then reported as rows/s and as a multiple of it.

    uv run python benchmarks/site_delivery.py [--participants 10000] [--sites 10] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from expectations.runtime import GxRunner
from expectations.site_gate import EXCLUDED, stage_site_data
from transforms.omop.participants import map_participants
from transforms.omop.trials import map_trials
from transforms.omop.vocabulary import load_vocabulary
from transforms.sites.ingest import ingest_site_deliveries
from trialhouse.synth_site import generate_delivery

REPO = Path(__file__).resolve().parent.parent
RECORD = REPO / "tests" / "data" / "ctgov" / "NCT06668571.json"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=10_000)
    ap.add_argument("--sites", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="site_bench_"))
    try:
        landing = work / "landing"
        folders, t_gen = timed(lambda: generate_delivery(landing / "sites", participants=args.participants,
                                                         sites=args.sites, seed=args.seed))
        con = duckdb.connect(str(work / "wh.duckdb"))
        csvs = [str(p) for f in folders for p in sorted(f.glob("*.csv")) if p.name != "sites.csv"]
        _, t_base = timed(lambda: [con.execute("SELECT count(*) FROM read_csv(?, header = true, all_varchar = true)",
                                               [c]).fetchone() for c in csvs])
        rows = sum(con.execute("SELECT count(*) FROM read_csv(?, header = true, all_varchar = true)", [c]).fetchone()[0]
                   for c in csvs)
        _, t_ingest = timed(lambda: ingest_site_deliveries(con, landing, run_id="bench"))
        load_vocabulary(con, "omop")
        con.execute("CREATE TABLE registry_src AS SELECT 'NCT06668571' AS nct_id, ? AS payload", [RECORD.read_text()])
        map_trials(con, source="registry_src", schema="stage_omop", vocab_schema="omop")
        runner, t_gx = timed(GxRunner)  # includes the one-off great-expectations import
        gate, t_gate = timed(lambda: stage_site_data(con, runner, "bench", json.loads(RECORD.read_text())))
        counts, t_map = timed(lambda: map_participants(con, pseudonym_key=b"benchmark-key-not-a-secret-00000",
                                                       exclude=EXCLUDED))
        _, t_remap = timed(lambda: map_participants(con, pseudonym_key=b"benchmark-key-not-a-secret-00000",
                                                    exclude=EXCLUDED))
        written = sum(counts.values())
        print(f"{args.participants} participants, {args.sites} sites, {rows:,} SDTM rows "
              f"(held by the gate: {gate.quarantined}, warnings: {len(gate.warnings)}); {written:,} OMOP rows written")
        print(f"{'stage':<28}{'seconds':>9}{'rows/s':>12}{'x baseline':>12}")
        for name, t in (("baseline read_csv", t_base), ("generate (synth_site)", t_gen), ("ingest (contract)", t_ingest),
                        ("gate (site_protocol)", t_gate), ("map (OMOP)", t_map), ("map again (no-op reload)", t_remap)):
            print(f"{name:<28}{t:>9.2f}{rows / t:>12,.0f}{t / t_base:>12.1f}")
        print(f"(great-expectations context and import, once per run: {t_gx:.1f} s)")
        con.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
