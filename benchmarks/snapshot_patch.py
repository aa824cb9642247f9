"""Bringing the standby up to the work file after a small change: DuckDB's block checksums against
comparing both files whole, on the same files in the same run.

    uv run python -m benchmarks.snapshot_patch --mb 2048

Builds a work file of about `--mb` MB (random strings, the pipeline's storage format), publishes
it (the published file and its standby), changes one row, checkpoints, and gives the standby's bytes
to two copies. Then, on the same pages (all in the page cache, as after a run), the publish's patch
(`snapshot._patch`: the lock, the space check, the fsyncs, the headers) with
  baseline  both files read whole, 8 MB at a time, and the differing blocks rewritten (the publish
            before this round, and still its way after a patch that died midway);
  checksums 8 bytes a block read from each file, and the differing blocks rewritten.
Both must end with the work file's bytes (checked). Prints the figures; nothing is asserted.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from trialhouse import snapshot
from trialhouse.settings import duckdb_storage_config
from trialhouse.workfile import connect_work

ROWS_PER_MB = 12_800  # rows of ~250 characters that take about a MB on disk in the storage format


def _equal(a: Path, b: Path) -> bool:
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(8 << 20), fb.read(8 << 20)
            if x != y:
                return False
            if not x:
                return True


def run(folder: Path, mb: int) -> dict:
    work = folder / "wh.work.duckdb"
    published = folder / "wh.duckdb"
    con = connect_work(work, duckdb_storage_config())
    try:
        # a warehouse's own table: a publish replaces only files the pipeline published (snapshot.foreign_target)
        con.execute("CREATE SCHEMA meta; CREATE TABLE meta.load_log (run_id VARCHAR)")
        con.execute("CREATE TABLE t AS SELECT i AS id, md5(i::VARCHAR) || md5(random()::VARCHAR) || "
                    "repeat(md5((i * 7)::VARCHAR), 6) AS v FROM range(?) r(i)", [mb * ROWS_PER_MB])
        block_size = con.execute("SELECT block_size FROM pragma_database_size() WHERE database_name = "
                                 "current_database()").fetchone()[0]
        snapshot.publish_snapshot(con, published)  # the published file and a standby, both this state
        con.execute("UPDATE t SET v = 'changed' WHERE id = ?", [mb * ROWS_PER_MB // 2])
        con.execute("CHECKPOINT")
    finally:
        con.close()
    standby = snapshot.standby_path(published)
    other = folder / "standby.copy"
    shutil.copyfile(standby, other)
    size = work.stat().st_size
    figures = {"size": size, "blocks": (size - snapshot.HEADERS) // block_size}
    for compare, target in (("whole", other), ("checksums", standby)):
        t = time.perf_counter()
        written, compared = snapshot._patch(work, target, published, block_size, compare)
        figures[compare] = (time.perf_counter() - t, written)
        if compared != compare or not _equal(work, target):
            raise SystemExit(f"{compare}: the standby does not hold the work file's bytes")
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=1024, help="size of the work file, about (default 1024)")
    args = ap.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="trialhouse-patch-"))
    try:
        f = run(folder, args.mb)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    (whole_s, whole_w), (ck_s, ck_w) = f["whole"], f["checksums"]
    print(f"work file {f['size'] / 2**20:,.0f} MiB, {f['blocks']:,} blocks; one row changed")
    print(f"{'baseline: both files compared whole':<40}{whole_s * 1e3:>10.1f} ms{whole_w / 2**20:>10.1f} MiB written")
    print(f"{'block checksums (8 bytes a block)':<40}{ck_s * 1e3:>10.1f} ms{ck_w / 2**20:>10.1f} MiB written")
    print(f"speed-up: {whole_s / ck_s:.1f}x" if ck_s > 0 else "speed-up: -")
    return 0


if __name__ == "__main__":
    sys.exit(main())
