"""The whole pipeline at registry scale, against the time DuckDB alone takes to parse the same files.

    uv run python -m benchmarks.registry --studies 10000

Generates (or reuses) a bulk-download zip of N synthetic studies (benchmarks/registry_corpus.py)
and a smaller one of M, then in the same run:
  startup      `trialhouse run` on a landing folder of one study (imports, Dagster, GX, one pass);
  pipeline     `trialhouse run --json` on M and on N studies in fresh warehouses (raw, registry gate,
               FHIR, OMOP, DQD, publish, export), each step timed from Dagster's event log and the
               process tree's resident memory sampled every 50 ms (its peak per step and overall);
  floor        DuckDB `read_json_objects` over the same studies unzipped (parsing every object and
               extracting its NCT id): no pipeline can beat this on this machine;
  incremental  one changed study landed on the N-study warehouse, run again; then a second day's
               change to it. Both patch the analysts' file where DuckDB's block checksums differ
               (trialhouse/snapshot.py); the second's steps fill the table's last column. Then a day's
               update: N / 100 studies (--day-changes) spread over the corpus, in one zip.
Per-study figures come from the difference between the two sizes, so fixed costs (startup, the
vocabulary load, GX's context) do not hide the marginal cost. With `--repeat K` the M and N runs and
the floor are made K times, alternating, and the table shows each figure's median (peaks: the highest),
with the spread of the end-to-end times: one run here moves 20-40% with the machine's load.
Prints one table; nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import orjson

from benchmarks.registry_corpus import CORPUS_VERSION, write_bulk_zip

REPO = Path(__file__).resolve().parents[1]


@dataclass
class RunFigures:
    studies: int
    wall_s: float
    peak_rss: int  # bytes, the run's whole process tree
    steps: dict[str, float] = field(default_factory=dict)
    step_peaks: dict[str, int] = field(default_factory=dict)  # step -> peak bytes of the tree while it ran
    summary: dict = field(default_factory=dict)
    warehouse_bytes: int = 0


class _TreeRss:
    """Peak resident memory of a process and its descendants, sampled from /proc."""

    def __init__(self, pid: int, every: float = 0.05):
        self.pid, self.every, self.peak = pid, every, 0
        self.samples: list[tuple[float, int]] = []  # (epoch seconds, bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _children(pid: int) -> list[int]:
        out = []
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    out.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
        return out

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            todo, total = [self.pid], 0
            while todo:
                p = todo.pop()
                total += self._rss(p)
                todo.extend(self._children(p))
            self.peak = max(self.peak, total)
            self.samples.append((time.time(), total))
            self._stop.wait(self.every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak

    def peak_between(self, start: float, end: float) -> int:
        """The peak while [start, end] ran; for a step shorter than a sampling interval, the sample before it ended."""
        inside = [b for t, b in self.samples if start <= t <= end]
        return max(inside) if inside else next((b for t, b in reversed(self.samples) if t <= end), 0)


def median_run(runs: list[RunFigures]) -> RunFigures:
    """One run's figures from repeats: the median time of the whole run and of each step, the highest
    peaks (memory is a limit, not an average); the rest from the run whose wall time is the median."""
    if len(runs) == 1:
        return runs[0]
    ordered = sorted(runs, key=lambda r: r.wall_s)
    middle = ordered[(len(ordered) - 1) // 2]
    steps = {step: statistics.median(r.steps.get(step, 0.0) for r in runs) for step in middle.steps}
    peaks = {step: max(r.step_peaks.get(step, 0) for r in runs) for step in middle.step_peaks}
    return RunFigures(middle.studies, statistics.median(r.wall_s for r in runs), max(r.peak_rss for r in runs),
                      steps, peaks, middle.summary, middle.warehouse_bytes)


def _trialhouse() -> list[str]:
    exe = Path(sys.executable).with_name("trialhouse")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "trialhouse.cli"]


def run_pipeline(root: Path, studies: int) -> RunFigures:
    """`trialhouse run --json` in a fresh process on <root>/landing into <root>/warehouse.duckdb."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # an ephemeral instance per run
    env.update(TRIALHOUSE_WAREHOUSE=str(root / "warehouse.duckdb"), TRIALHOUSE_LANDING=str(root / "landing"),
               TRIALHOUSE_EXPORT=str(root / "exports"))
    t = time.perf_counter()
    proc = subprocess.Popen(_trialhouse() + ["run", "--json"], env=env, cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = _TreeRss(proc.pid)
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    peak = sampler.stop()
    try:
        summary = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise SystemExit(f"trialhouse run printed no summary (exit {proc.returncode}):\n{err[-4000:]}")
    if not summary.get("success") or summary.get("blocked"):
        raise SystemExit(f"the run did not publish: {json.dumps(summary)[:2000]}\n{err[-2000:]}")
    # The work file, the published one and the standby the next publish patches (trialhouse/snapshot.py).
    size = sum(p.stat().st_size for p in [*root.glob("warehouse*.duckdb"), *root.glob(".warehouse.duckdb.standby")])
    peaks = {step: sampler.peak_between(*window) for step, window in summary.get("step_windows", {}).items()}
    return RunFigures(studies, wall, peak, summary.get("step_seconds", {}), peaks, summary, size)


def land_corpus(root: Path, corpus: Path) -> None:
    dest = root / "landing" / "ctgov"
    dest.mkdir(parents=True, exist_ok=True)
    try:
        os.link(corpus, dest / corpus.name)
    except OSError:
        shutil.copy2(corpus, dest / corpus.name)


def duckdb_parse_seconds(corpus: Path, unzipped: Path, studies: int) -> tuple[float, float]:
    """(unzip seconds, DuckDB parse seconds) for the corpus' members as one file each."""
    t = time.perf_counter()
    with zipfile.ZipFile(corpus) as zf:
        zf.extractall(unzipped)
    unzip = time.perf_counter() - t
    con = duckdb.connect()
    query = ("SELECT count(*), count(DISTINCT json_extract_string(json, '$.protocolSection.identificationModule.nctId'))"
             " FROM read_json_objects(?, format = 'auto')")
    # The first read_json_objects of a process costs ~0.2 s once, whatever it reads (loading the JSON
    # extension alone does not pay it): untimed, it fell on the first M measurement and made DuckDB look
    # faster per study than it is (at 10,000 studies, one run, 125,341 studies/s instead of ~35,000).
    con.execute(query, [str(next(unzipped.glob("*.json")))]).fetchone()
    t = time.perf_counter()
    n, ids = con.execute(query, [str(unzipped / "*.json")]).fetchone()
    parse = time.perf_counter() - t
    con.close()
    if not n == ids == studies:
        raise SystemExit(f"DuckDB read {n} objects with {ids} NCT ids from {unzipped}, expected {studies}")
    return unzip, parse


def change_one_study(corpus: Path, landing: Path, day: int = 1) -> str:
    """A day's update of one study: a new title and a later last-update date, landed as a single file."""
    with zipfile.ZipFile(corpus) as zf:
        name = zf.namelist()[0]
        rec = _amended(zf.read(name), day)
    out = landing / "ctgov" / "updates" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(rec, option=orjson.OPT_INDENT_2))
    return rec["protocolSection"]["identificationModule"]["nctId"]


def _amended(data: bytes, day: int) -> dict:
    """A study's day-`day` version: a new title and that day's last-update date (in the past, or the
    registry suite would hold it)."""
    rec = orjson.loads(data)
    ps = rec["protocolSection"]
    ps["identificationModule"]["briefTitle"] += f" (amended on day {day})"
    ps["statusModule"]["lastUpdatePostDateStruct"] = {"date": f"2026-11-{day:02d}", "type": "ACTUAL"}
    return rec


def change_studies(corpus: Path, landing: Path, k: int, day: int) -> list[str]:
    """A day's update of `k` studies spread evenly over the corpus (the registry's daily changes fall
    anywhere in it), landed as one zip: new titles and a later last-update date."""
    out = landing / "ctgov" / "updates" / f"day-{day}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    changed = []
    with zipfile.ZipFile(corpus) as zf, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zo:
        names = zf.namelist()
        for name in names[:: max(1, len(names) // k)][:k]:
            rec = _amended(zf.read(name), day)
            zo.writestr(name, orjson.dumps(rec))
            changed.append(rec["protocolSection"]["identificationModule"]["nctId"])
    return changed


def _fmt_bytes(n: float) -> str:
    """Binary units, as the memory target is stated (2 GiB); GiB to two decimals, so a figure near
    the target is not rounded onto it."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} B" if unit == "B" else f"{n:,.2f} GiB" if unit == "GiB" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def _rate(n: int, s: float) -> str:
    return f"{n / s:,.0f}" if s > 0 else "-"


def print_table(n: int, m: int, corpus_info: dict, startup: RunFigures, small: RunFigures, big: RunFigures,
                floor: dict, incremental: list[RunFigures], spread: dict[int, list[float]] | None = None,
                day: RunFigures | None = None) -> None:
    """`spread`: each size's end-to-end wall times when the runs were repeated (the table shows medians).
    `day`: the run of a day's update of many studies, after the one-study ones."""
    dn = n - m
    w = 38
    print()
    print(f"TrialHouse registry benchmark: N = {n:,} studies (per-study cost from N - M, M = {m:,}), "
          f"{os.cpu_count()} cores")
    print(f"corpus: {corpus_info['json_bytes'] / 1e6:,.0f} MB of JSON, mean {corpus_info['mean_bytes'] / 1e3:.1f} KB, "
          f"largest {corpus_info['largest_bytes'] / 1e3:,.0f} KB, {corpus_info['with_results']:,} with results, "
          f"zip {corpus_info['zip_bytes'] / 1e6:,.0f} MB")
    print(f"startup: one-study run {startup.wall_s:.1f} s wall "
          f"(steps {sum(startup.steps.values()):.1f} s, so {startup.wall_s - sum(startup.steps.values()):.1f} s "
          f"of imports, Dagster and process start), peak RSS {_fmt_bytes(startup.peak_rss)}")
    print()
    inc = incremental[-1].steps if incremental else {}
    head = (f"{'stage':<{w}}{'M s':>9}{'N s':>9}{'ms/study':>10}{'studies/s':>11}{'1 changed s':>13}"
            f"{'peak RSS at N':>15}")
    print(head)
    print("-" * len(head))
    for step in big.steps:
        a, b = small.steps.get(step, 0.0), big.steps[step]
        per = (b - a) / dn if dn else 0
        print(f"{step:<{w}}{a:>9.1f}{b:>9.1f}{per * 1e3:>10.2f}{(1 / per if per > 0 else 0):>11,.0f}"
              f"{inc.get(step, 0.0):>13.1f}{_fmt_bytes(big.step_peaks.get(step, 0)):>15}")
    per_run = (big.wall_s - small.wall_s) / dn if dn else 0
    per_parse = (floor["parse_n"] - floor["parse_m"]) / dn if dn else 0
    print("-" * len(head))
    print(f"{'end to end (run wall time)':<{w}}{small.wall_s:>9.1f}{big.wall_s:>9.1f}{per_run * 1e3:>10.2f}"
          f"{(1 / per_run if per_run > 0 else 0):>11,.0f}")
    print(f"{'  overall at N (N / wall)':<{w}}{'':>9}{'':>9}{'':>10}{_rate(n, big.wall_s):>11}")
    print(f"{'DuckDB read_json_objects (floor)':<{w}}{floor['parse_m']:>9.1f}{floor['parse_n']:>9.1f}"
          f"{per_parse * 1e3:>10.2f}{(1 / per_parse if per_parse > 0 else 0):>11,.0f}")
    print(f"{'  (unzip to disk, not counted)':<{w}}{floor['unzip_m']:>9.1f}{floor['unzip_n']:>9.1f}")
    if spread and len(spread[n]) > 1:
        print(f"repeats: {len(spread[n])} runs of each size, alternating; the table shows medians (peaks: the highest); "
              f"end to end at M {min(spread[m]):.1f}-{max(spread[m]):.1f} s, at N {min(spread[n]):.1f}-{max(spread[n]):.1f} s")
    print()
    print(f"peak RSS: M {_fmt_bytes(small.peak_rss)}, N {_fmt_bytes(big.peak_rss)}")
    print(f"warehouse size at N (work, published and standby files): {_fmt_bytes(big.warehouse_bytes)}; "
          f"published studies {big.summary.get('published', 0):,}")
    for label, run in zip(("first update after the full load", "next day"), incremental):
        print(f"incremental (1 changed study on the N-study warehouse), {label}: {run.wall_s:.1f} s wall, "
              f"steps {sum(run.steps.values()):.1f} s (publish {run.steps.get('publish__warehouse', 0):.1f} s), "
              f"published {run.summary.get('published', 0)}, snapshot {run.summary.get('snapshot')} "
              f"({_fmt_bytes(run.summary.get('snapshot_bytes_written', 0))} written"
              f"{', compared ' + run.summary['snapshot_compared'] if run.summary.get('snapshot_compared') else ''})")
    if day is not None:
        print(f"a day's update ({day.studies:,} changed studies spread over the N): {day.wall_s:.1f} s wall, "
              f"steps {sum(day.steps.values()):.1f} s (publish {day.steps.get('publish__warehouse', 0):.1f} s), "
              f"published {day.summary.get('published', 0):,}, peak RSS {_fmt_bytes(day.peak_rss)}")
    ratio_total = big.wall_s / floor["parse_n"] if floor["parse_n"] else 0
    ratio_per = per_run / per_parse if per_parse else 0
    print()
    print(f"pipeline time / DuckDB parse time: {ratio_total:.1f}x at N (whole run), {ratio_per:.1f}x per study")
    if dn < MEANINGFUL_DN:  # at 300 studies the per-study column read -0.10 ms and the ratio -3.1x, unflagged
        print(f"note: per-study figures come from N - M = {dn:,} studies; below {MEANINGFUL_DN:,} the runs' fixed "
              f"costs (seconds, moving with the machine) drown them: use --studies 10000 or more for them")


# N - M below which the per-study column is noise: a run's fixed cost moves by ~1 s between runs, and
# 5,000 studies cost ~5 s here.
MEANINGFUL_DN = 5_000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=10_000, help="N, the larger size")
    ap.add_argument("--small", type=int, help="M, the smaller size (default N / 5)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workdir", type=Path, help="keep corpora and warehouses here (default: a temporary folder)")
    ap.add_argument("--no-incremental", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="run M, N and the floor K times each and print medians")
    ap.add_argument("--day-changes", type=int, help="studies changed in the day's update run after the one-study "
                    "updates (default N / 100, about a registry day's share; 0 skips it)")
    args = ap.parse_args(argv)
    n = args.studies
    m = args.small if args.small is not None else max(1, n // 5)
    if not 0 < m < n:
        ap.error("need 0 < --small < --studies")
    if args.repeat < 1:
        ap.error("need --repeat >= 1")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="trialhouse-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        corpora = {}
        for size in (1, m, n):
            path = work / "corpus" / f"{size}-{args.seed}-v{CORPUS_VERSION}" / "ctg-studies.json.zip"
            info_path = path.with_suffix(".info.json")
            if not (path.exists() and info_path.exists()):
                t = time.perf_counter()
                info = write_bulk_zip(path, size, args.seed)
                info_path.write_text(json.dumps(info))
                print(f"generated {size:,} studies in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            corpora[size] = (path, json.loads(info_path.read_text()))

        def fresh_run(size: int) -> Path:
            root = work / "runs" / str(size)
            shutil.rmtree(root, ignore_errors=True)
            land_corpus(root, corpora[size][0])
            print(f"running the pipeline on {size:,} studies ...", file=sys.stderr)
            return root

        startup = run_pipeline(fresh_run(1), 1)
        runs: dict[str, list[RunFigures]] = {"m": [], "n": []}
        floors: dict[str, list[float]] = {}
        # Repeats alternate sizes (M, N, M, N, ...), so a slow spell of the machine does not fall on one size.
        for size, label in [(m, "m"), (n, "n")] * args.repeat:
            root = fresh_run(size)
            runs[label].append(run_pipeline(root, size))
            unzip, parse = duckdb_parse_seconds(corpora[size][0], root / "unzipped", size)
            floors.setdefault(f"unzip_{label}", []).append(unzip)
            floors.setdefault(f"parse_{label}", []).append(parse)
            shutil.rmtree(root / "unzipped")
        floor = {k: statistics.median(v) for k, v in floors.items()}
        incremental: list[RunFigures] = []
        day_run = None
        if not args.no_incremental:
            root = work / "runs" / str(n)
            for day in (1, 2):
                change_one_study(corpora[n][0], root / "landing", day)
                print(f"running the pipeline on one changed study (day {day}) ...", file=sys.stderr)
                incremental.append(run_pipeline(root, 1))
            k = max(1, n // 100) if args.day_changes is None else args.day_changes
            if k:
                change_studies(corpora[n][0], root / "landing", k, 3)
                print(f"running the pipeline on a day's update of {k:,} studies ...", file=sys.stderr)
                day_run = run_pipeline(root, k)
        print_table(n, m, corpora[n][1], startup, median_run(runs["m"]), median_run(runs["n"]), floor, incremental,
                    {m: [r.wall_s for r in runs["m"]], n: [r.wall_s for r in runs["n"]]}, day_run)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
