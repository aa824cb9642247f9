"""Readers are never blocked: the pipeline writes its own work file and publishes by atomically
replacing the file analysts open read-only.

DuckDB allows one writing process per file and a writer's lock also keeps other processes'
read-only connections out. So the pipeline owns `<name>.work.duckdb`; after each publish it
checkpoints (the WAL is folded into the file), brings a file beside the published one up to the
same bytes and `os.replace`s it into place. A reader that opened the old file keeps reading the old
inode, a complete earlier load; the next connection sees the new one. Nobody ever sees half a load.

Copying the whole file every publish made a one-study update cost as much as the warehouse (about
8 s at 100,000 studies: copy, fsync, and freeing the replaced file). So the replaced file is kept
as a standby (`.<name>.standby`) and the next publish patches it in place: it compares it with the
work file block by block and rewrites only the blocks that differ. The result is byte for byte the
work file, whatever the standby held, so no change log has to be trusted. A standby that a reader
still has open (DuckDB readers hold a shared fcntl lock) is never touched: its name is dropped, the
reader keeps its inode, and this publish falls back to a whole copy.
"""
from __future__ import annotations

import glob
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # no POSIX locks: every publish copies the whole file
    fcntl = None

CHUNK = 8 << 20  # compared at a time; a bytearray compare is one memcmp
BLOCK = 256 << 10  # DuckDB's block size: what a differing chunk is rewritten in
SYNC_THREADS = 4


class SnapshotSpaceError(OSError):
    """Not enough free disk for the analysts' file: nothing was touched, the published file stands."""


# Kept free beyond what a copy or patch needs: DuckDB's WAL and temp files share the disk.
SPACE_MARGIN = 64 << 20


@dataclass
class SnapshotStats:
    path: Path
    mode: str  # 'patched' (standby brought up to date in place) or 'copied' (whole file)
    size_bytes: int
    bytes_written: int


def work_path(published: str | Path) -> Path:
    p = Path(published)
    return p.with_name(f"{p.stem}.work{p.suffix or '.duckdb'}")


def standby_path(published: str | Path) -> Path:
    p = Path(published)
    return p.with_name(f".{p.name}.standby")


def publish_snapshot(con, published: str | Path) -> SnapshotStats:
    """Checkpoint the work database behind `con` and swap a file with its exact bytes in as `published`."""
    target = Path(published)
    source = Path(con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()[0])
    con.execute("CHECKPOINT")
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep(target)
    standby = standby_path(target)
    written = _patch(source, standby, target)
    mode = "patched"
    if written is None:
        _check_space(target.parent, source.stat().st_size, "a whole copy of")
        mode, written = "copied", _copy(source, standby)
    # The file being replaced becomes the next standby (a second name first, so no moment lacks one).
    keep = target.with_name(f".{target.name}.{os.getpid()}.old")
    kept = _link(target, keep)
    os.replace(standby, target)
    if kept:
        os.replace(keep, standby)
    _fsync_dir(target.parent)
    return SnapshotStats(target, mode, target.stat().st_size, written)


def _patch(source: Path, standby: Path, target: Path) -> int | None:
    """Rewrite the standby's blocks that differ from `source`; bytes written, or None to copy instead."""
    if fcntl is None or not standby.exists():
        return None
    # fcntl locks do not conflict within a process: look for our own readers. And never patch the
    # published file itself, whatever linked the two names.
    if _open_here(standby) or (target.exists() and os.path.samefile(standby, target)):
        os.unlink(standby)
        return None
    fd = os.open(standby, os.O_RDWR)
    try:
        try:  # a reader still holding this file (it was the published one) must keep what it reads
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.unlink(standby)
            return None
        _check_space(target.parent, source.stat().st_size - os.fstat(fd).st_size, "the growth of")
        written = _sync(source, fd)
        os.fsync(fd)
        return written
    finally:
        os.close(fd)  # also releases the lock


def _open_here(path: Path) -> bool:
    """Does this process hold `path` open (a DuckDB reader in the same process as the pipeline)?"""
    st = path.stat()
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            other = os.stat(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if (other.st_ino, other.st_dev) == (st.st_ino, st.st_dev):
            return True
    return False


def _sync(source: Path, fd: int) -> int:
    """Make the file behind `fd` equal to `source`; bytes written.

    Reading both files is the whole cost (two page-cache copies per byte), and the reads release
    the GIL, so one thread per core takes every n-th chunk.
    """
    size = source.stat().st_size
    threads = max(1, min(SYNC_THREADS, os.cpu_count() or 1))
    src = os.open(source, os.O_RDONLY)
    try:
        with ThreadPoolExecutor(threads) as pool:
            written = sum(pool.map(lambda i: _sync_chunks(src, fd, size, i, threads), range(threads)))
    finally:
        os.close(src)
    os.ftruncate(fd, size)
    return written


def _sync_chunks(src: int, fd: int, size: int, first: int, step: int) -> int:
    a, b = bytearray(CHUNK), bytearray(CHUNK)
    written = 0
    for offset in range(first * CHUNK, size, step * CHUNK):
        n = os.preadv(src, [a], offset)
        m = os.preadv(fd, [b], offset)
        if n == m == CHUNK and a == b:  # one memcmp
            continue
        view = memoryview(a)
        for start in range(0, n, BLOCK):
            end = min(start + BLOCK, n)
            if end > m or a[start:end] != b[start:end]:
                os.pwrite(fd, view[start:end], offset + start)
                written += end - start
        view.release()
    return written


def _check_space(folder: Path, needed: int, what: str) -> None:
    """Refuse before writing rather than fill the disk halfway: a full disk also stops DuckDB's own
    checkpoint (FatalException), which then needs a restart to recover."""
    free = shutil.disk_usage(folder).free
    if max(needed, 0) + SPACE_MARGIN > free:
        raise SnapshotSpaceError(
            f"not enough free disk in {folder} to publish the analysts' file: {what} the warehouse needs "
            f"{_mb(max(needed, 0))} plus a {_mb(SPACE_MARGIN)} margin, {_mb(free)} is free. The published file "
            f"is unchanged; free some space and run again (the next run finishes this publish).")


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _copy(source: Path, dest: Path) -> int:
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(source, tmp)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # a half copy would hold the disk until the next run swept it
        raise
    os.replace(tmp, dest)
    return dest.stat().st_size


def _link(target: Path, keep: Path) -> bool:
    try:
        os.link(target, keep)
        return True
    except FileNotFoundError:  # the first publish
        return False
    except OSError:  # no hard links here: the replaced file is simply freed
        return False


def _sweep(target: Path) -> None:
    """Names a publish that died midway left behind (their inodes are freed with them)."""
    prefix = glob.escape(f".{target.name}.")
    for suffix in ("*.old", "*.tmp"):
        for p in target.parent.glob(prefix + suffix):
            p.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
