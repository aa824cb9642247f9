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
import math
import re
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
        extra = delete_headroom(con, row_group_size)
        if extra:
            limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
            con.execute("SET memory_limit = ?", [f"{_limit_bytes(limit) + extra}B"])
    except BaseException:
        con.close()
        raise
    return con


# DuckDB holds ~0.3 MiB for every row group a transaction deletes or updates rows in, until the
# connection closes, and can neither evict nor spill it (DuckDB 1.5 and 2.0, measured: one row deleted
# in each of 879 row groups of 8,192 rows held 242 MiB; in each of 59 groups of 122,880, 20 MiB). The
# work file's row groups are small, so a batch spread over a big warehouse touches thousands: a day's
# update of 6,000 studies on 600,000 ran the publish out of its 512 MB in the OMOP merge, and once
# published, checkpoints of the file needed as much again (604 MiB for a one-row write). The margin
# over 0.3 MiB covers part-filled row groups (omop.metadata at 600,000: 1,320 for 1,246 full ones' rows).
DELETE_BYTES_PER_ROW_GROUP = 384 * 1024
_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "KB": 10**3, "MB": 10**6, "GB": 10**9,
          "TB": 10**12}


def delete_headroom(con: duckdb.DuckDBPyConnection, row_group_size: int = WAREHOUSE_ROW_GROUP) -> int:
    """Bytes added to the connection's memory limit: ~0.3 MiB for every row group of the published
    tables a publish deletes from or updates (FHIR resources, OMOP but its vocabulary, study states,
    quarantine), so the publish and any checkpoint after it fit. It is a cap, not an allocation: a run
    that deletes little uses little, and a full load into empty tables gets none."""
    from transforms.omop.publish import VOCABULARY  # loaded whole, never deleted from by a publish

    rows = con.execute(
        "SELECT estimated_size FROM duckdb_tables() WHERE (schema_name = 'fhir' AND table_name = 'resource') "
        "OR (schema_name = 'omop' AND table_name NOT IN (SELECT unnest(?::VARCHAR[]))) "
        "OR (schema_name = 'meta' AND table_name = 'study_state') OR (schema_name = 'quarantine' AND table_name = 'record')",
        [sorted(VOCABULARY)]).fetchall()
    return sum(math.ceil((n or 0) / row_group_size) for (n,) in rows) * DELETE_BYTES_PER_ROW_GROUP


@contextlib.contextmanager
def without_headroom(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The connection's memory limit without delete_headroom for a block that deletes nothing but
    reads much: DuckDB keeps what it reads as cache up to the limit, and the whole FHIR export of
    600,000 studies under the raised limit peaked at 1,659 MiB resident against 798 (28-30 s both)."""
    raised = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    base = _limit_bytes(raised) - delete_headroom(con)
    if base <= 0 or base >= _limit_bytes(raised):
        yield
        return
    con.execute("SET memory_limit = ?", [f"{base}B"])
    try:
        yield
    finally:
        con.execute("SET memory_limit = ?", [raised])


def _limit_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]+)\s*", text)
    if not m or m.group(2) not in _UNITS:
        raise ValueError(f"DuckDB memory_limit {text!r} is not in a unit this knows")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


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


class RunLock:
    """One run at a time per work file, held from a run's first warehouse step to its end.

    Each step opens its own connection, and DuckDB's file lock lasts a connection, not a run: two runs
    started together took turns step by step, and one run's publish merged the other's staged batch,
    publishing a record the other run's gate had blocked and deleting two studies for good (found by an
    adversarial review). An flock on `<work file>.run.lock` makes a second run wait for the first to
    finish, then take what is left. The kernel releases it when a run's process dies."""

    def __init__(self, work: str | Path):
        self.path = Path(f"{work}.run.lock")
        self.fd: int | None = None

    def acquire(self, waiting=None) -> None:
        """Blocks until the lock is ours; `waiting(message)` is told once if another run holds it."""
        import fcntl
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                for _ in range(10):  # the landing sensor asks with a shared lock held for microseconds (held())
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        time.sleep(0.01)
                else:
                    raise BlockingIOError
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                if waiting:
                    waiting(f"another run (process {holder}) is writing {self.path.name.removesuffix('.run.lock')}: "
                            "waiting for it to finish")
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    @staticmethod
    def held(work: str | Path) -> bool:
        """Whether a run (in any process) holds the lock of `work` now, asked without waiting."""
        import fcntl
        import os

        try:
            fd = os.open(f"{work}.run.lock", os.O_RDONLY)
        except FileNotFoundError:
            return False
        except OSError:  # cannot be asked (no permission): taken as held, so nothing starts on a guess
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # and with it the shared lock just taken

    def release(self) -> None:
        import os

        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None
