"""Opening the pipeline's work file for writing, with the warehouse's row group size.

DuckDB groups a table's rows in row groups of 122,880 by default. A study record averages 16 KB,
so one row group of raw versions is ~2 GB of JSON, and two things went wrong with that size:
  - A transaction's rows go through the WAL and are compressed at the next checkpoint, which also
    rewrites the table's last, partly filled row group whole: loading 600,000 studies spent 90 of
    its 198 s of raw ingest in checkpoints that grew with the table.
  - Only a transaction that fills a whole row group is written straight into the file (compressed,
    the WAL keeping a pointer), so no batch of a sensible size ever was.
With row groups of WAREHOUSE_ROW_GROUP rows, a raw batch of that many versions is written into the
file as it is inserted: raw ingest of 100,000 studies 20.4-22.9 s -> 13.0 s (alternating runs), of
600,000 studies 198 -> 109 s (at 2,048 rows). Smaller groups compress a little worse (the
20,000-study warehouse is 138 MB with the default, 159 MB at 8,192, 177 MB at 2,048), so 8,192.

The size is not stored in the file: it belongs to the session that attaches it, and a checkpoint
merges row groups smaller than its session's size. So every writer opens the file here; readers
(analysts, `trialhouse status`) may open it any way they like.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from trialhouse.settings import WAREHOUSE_ROW_GROUP

ALIAS = "warehouse"


def connect_work(path: str | Path, config: dict | None = None, row_group_size: int = WAREHOUSE_ROW_GROUP,
                 retries: int = 10) -> duckdb.DuckDBPyConnection:
    """A connection whose default catalog is the file at `path`, attached with `row_group_size`.

    DuckDB takes a row group size only when attaching, so the connection's own database is an empty
    in-memory one. Its temporary files go where the file's own would (beside it, not the working
    directory). A file another process holds is retried with backoff, as dagster-duckdb does."""
    path = str(path)
    con = duckdb.connect(config={"temp_directory": f"{path}.tmp", **(config or {})})
    try:
        literal = path.replace("'", "''")  # ATTACH takes no parameters; the path comes from settings, not data
        delay = 0.1
        for attempt in range(retries + 1):
            try:
                con.execute(f"ATTACH '{literal}' AS {ALIAS} (ROW_GROUP_SIZE {int(row_group_size)})")
                break
            except duckdb.IOException:
                if attempt == retries:
                    raise
                time.sleep(delay)
                delay = min(2 * delay, 2.0)
        con.execute(f"USE {ALIAS}")
    except BaseException:
        con.close()
        raise
    return con


@contextlib.contextmanager
def single_threaded(con: duckdb.DuckDBPyConnection, workers: int) -> Iterator[None]:
    """DuckDB on one thread while `workers` (>1) processes keep the cores busy, then its default again.

    With two worker processes on two cores, DuckDB's second thread only competed with them. Alone, on
    20,000 studies and alternating: the FHIR stage 10.15-10.21 -> 9.50-9.63 s (the run process's CPU
    6.1-6.3 -> 5.2 s), raw ingest of the bulk zip 2.87-3.65 -> 2.59 s (its CPU 2.1-3.3 -> 1.5-1.6 s). The
    registry stage, whose run process mostly reads, did not change (4.06-4.72 against 4.13-4.57 s), so
    it keeps both. The pipeline's connections never set `threads`, so RESET gives back what they had."""
    if workers <= 1:
        yield
        return
    con.execute("SET threads = 1")
    try:
        yield
    finally:
        con.execute("RESET threads")
