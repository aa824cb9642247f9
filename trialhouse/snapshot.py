"""Readers are never blocked: the pipeline writes its own work file and publishes by atomically
replacing the file analysts open read-only.

DuckDB allows one writing process per file and a writer's lock also keeps other processes'
read-only connections out. So the pipeline owns `<name>.work.duckdb`; after each publish it
checkpoints (the WAL is folded into the file), brings a file beside the published one up to the
same bytes and `os.replace`s it into place. A reader that opened the old file keeps reading the old
inode, a complete earlier load; the next connection sees the new one. Nobody ever sees half a load.

Copying the whole file every publish made a one-study update cost as much as the warehouse (about
8 s at 100,000 studies: copy, fsync, and freeing the replaced file). So the replaced file is kept
as a standby (`.<name>.standby`) and the next publish patches it in place, rewriting only the
blocks that differ from the work file's. The first publish makes the standby too, so the first
update after a full load patches as well.

Which blocks differ is read from DuckDB's own block checksums, not from a change log: the file is
three 4 KiB headers and then blocks of `block_size` bytes, each starting with the 8-byte checksum of
its contents, which DuckDB writes with every block and verifies on every read. Comparing 8 bytes a
block instead of both files whole made the patch grow with the change, not the warehouse: at 600,000
studies (4.3 GiB files) the publish step 6.5 -> 1.4 s; the compare itself takes 30-50 ms with both
files in the page cache, ~0.3 s with the standby on disk (benchmarks/snapshot_patch.py). The headers are always rewritten. Whatever
the standby held, it ends as the work file's bytes unless two different blocks at one position share
a 64-bit checksum. A patch that died midway may have left torn blocks whose checksum is right and
contents are not, so a patch first blanks the standby's main header and restores it last, after the
blocks are on disk: a standby without DuckDB's magic is compared whole, as is a file whose size is
not whole blocks.

A standby that a reader still has open (DuckDB readers hold a shared fcntl lock) is never touched:
its name is dropped, the reader keeps its inode, and this publish falls back to a whole copy.
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

CHUNK = 8 << 20  # compared at a time when comparing whole files; a bytearray compare is one memcmp
BLOCK = 256 << 10  # what a differing chunk is rewritten in when comparing whole files
SYNC_THREADS = 4
HEADERS = 3 * 4096  # DuckDB's main header and its two alternating database headers
MAGIC = (8, b"DUCK")  # where DuckDB's main header holds its magic bytes, after the header's checksum
CHECKSUM = 8  # bytes at the start of every block


class SnapshotSpaceError(OSError):
    """Not enough free disk for the analysts' file: nothing was touched, the published file stands."""


# Kept free beyond what a copy or patch needs: DuckDB's WAL and temp files share the disk.
SPACE_MARGIN = 64 << 20


@dataclass
class SnapshotStats:
    path: Path
    mode: str  # 'patched' (standby brought up to date in place) or 'copied' (whole file)
    size_bytes: int
    bytes_written: int  # into the published file (a standby made beside a copy is not counted)
    compared: str = ""  # 'checksums' (8 bytes a block) or 'whole' (both files read), for a patch


def work_path(published: str | Path) -> Path:
    p = Path(published)
    return p.with_name(f"{p.stem}.work{p.suffix or '.duckdb'}")


def standby_path(published: str | Path) -> Path:
    p = Path(published)
    return p.with_name(f".{p.name}.standby")


def owed_path(published: str | Path) -> Path:
    """A marker beside the analysts' file: the work file holds a publish the analysts' file does not yet.

    It lives outside the database on purpose: whatever the work file records about a publish in
    progress is copied into the snapshot itself (the published file listed its own export parts as
    still pending), so the publish clears that bookkeeping before the swap and this marker alone says,
    across a crash, that a swap is still owed."""
    p = Path(published)
    return p.with_name(f".{p.name}.owed")


def mark_owed(published: str | Path) -> None:
    """Set the marker; one already there keeps its time, which names the dead publish the landing sensor
    requests one run for (opened again, each finishing run that died too made the sensor request another,
    every 5 s, for ever: a review)."""
    marker = owed_path(published)
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    with marker.open("wb") as fh:
        os.fsync(fh.fileno())
    _fsync_dir(marker.parent)


def clear_owed(published: str | Path) -> None:
    owed_path(published).unlink(missing_ok=True)


class ForeignTarget(RuntimeError):
    """The analysts' file path holds something this pipeline did not publish."""


def foreign_target(published: str | Path) -> str | None:
    """Why the file at `published` must not be replaced by a publish, or None.

    A publish swaps the work file's copy in over whatever the path holds. Pointed by mistake at a
    database of one's own (or any file), it replaced it with exit 0, and the next publish overwrote the
    standby the old bytes had become. Only a DuckDB file with this pipeline's `meta.load_log` (which
    the first publish writes) is replaced."""
    import duckdb

    target = Path(published)
    if not os.path.lexists(target):
        return None
    if target.is_dir():
        return f"{target} is a folder, not a warehouse file"
    if not target.is_file():
        return f"{target} is not a regular file"
    try:
        with duckdb.connect(str(target), read_only=True) as con:
            ours = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'meta' "
                               "AND table_name = 'load_log'").fetchone()[0]
    except duckdb.Error as exc:
        return f"{target} exists and is not a DuckDB database this pipeline can read ({str(exc).splitlines()[0]})"
    if not ours:
        return f"{target} is a DuckDB database this pipeline did not publish (it has no meta.load_log)"
    return None


def publish_snapshot(con, published: str | Path) -> SnapshotStats:
    """Checkpoint the work database behind `con` and swap a file with its exact bytes in as `published`."""
    target = Path(published)
    problem = foreign_target(target)
    if problem:
        raise ForeignTarget(f"{problem}: not replaced; point TRIALHOUSE_WAREHOUSE (--warehouse) at a new path")
    source, block_size = con.execute(
        "SELECT d.path, s.block_size FROM duckdb_databases() AS d JOIN pragma_database_size() AS s "
        "ON s.database_name = d.database_name WHERE d.database_name = current_database()").fetchone()
    source = Path(source)
    con.execute("CHECKPOINT")
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep(target)
    standby = standby_path(target)
    patched = _patch(source, standby, target, block_size)
    if patched is None:
        _check_space(target.parent, source.stat().st_size, "a whole copy of")
        mode, written, compared = "copied", _copy(source, standby), ""
    else:
        mode, (written, compared) = "patched", patched
    # The file being replaced becomes the next standby (a second name first, so no moment lacks one).
    keep = target.with_name(f".{target.name}.{os.getpid()}.old")
    first = not target.exists()
    kept = _link(target, keep)
    os.replace(standby, target)
    if kept:
        os.replace(keep, standby)
    elif first:  # nothing was replaced: copy what was just published, or the next publish copies it whole
        _standby_copy(target, standby)
    _fsync_dir(target.parent)
    return SnapshotStats(target, mode, target.stat().st_size, written, compared)


def _standby_copy(target: Path, standby: Path) -> None:
    """A standby for the first patch. Optional: with too little disk the next publish copies instead."""
    free = shutil.disk_usage(target.parent).free
    if target.stat().st_size + SPACE_MARGIN <= free:
        _copy(target, standby)


def _patch(source: Path, standby: Path, target: Path, block_size: int,
           compare: str = "checksums") -> tuple[int, str] | None:
    """Rewrite the standby's blocks that differ from `source`: (bytes written, how they were found),
    or None to copy instead. `compare="whole"` (benchmarks/snapshot_patch.py's baseline) reads both
    files whole even where the checksums could be trusted."""
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
        if (compare == "checksums" and _whole_blocks(source, block_size) and _whole_blocks(standby, block_size)
                and _intact(fd)):
            compared = "checksums"
            os.pwrite(fd, bytes(4096), 0)  # blank the main header until every block is on disk
            os.fsync(fd)
            written = _sync_blocks(source, fd, block_size)
            os.fsync(fd)
            written += _copy_headers(source, fd)  # last: the standby is whole again
        else:  # the headers are copied last here too: a compare that dies midway leaves the header
            # blank, so the next publish compares whole again. Restored early, it passed for intact
            # with a block whose checksum was new and its tail stale, and checksums missed it for good.
            compared = "whole"
            os.pwrite(fd, bytes(4096), 0)
            os.fsync(fd)
            written = _sync(source, fd, start=HEADERS)
            os.fsync(fd)
            written += _copy_headers(source, fd)
        os.fsync(fd)
        return written, compared
    finally:
        os.close(fd)  # also releases the lock


def _whole_blocks(path: Path, block_size: int) -> bool:
    size = path.stat().st_size
    return block_size > 0 and size >= HEADERS and (size - HEADERS) % block_size == 0


def _intact(fd: int) -> bool:
    """Does the standby hold DuckDB's main header? A patch blanks it while blocks are being rewritten."""
    at, magic = MAGIC
    return os.pread(fd, len(magic), at) == magic


def _sync_blocks(source: Path, fd: int, block_size: int) -> int:
    """Make the standby's blocks equal to `source`'s where their checksums differ; bytes written.

    Reads 8 bytes a block from each file (random reads: no read-ahead of the rest of the block)."""
    size = source.stat().st_size
    src = os.open(source, os.O_RDONLY)
    try:
        for f in (src, fd):
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(f, 0, 0, os.POSIX_FADV_RANDOM)
        old_size = os.fstat(fd).st_size
        written = 0
        for offset in range(HEADERS, size, block_size):
            if offset + block_size <= old_size and os.pread(src, CHECKSUM, offset) == os.pread(fd, CHECKSUM, offset):
                continue
            written += _copy_range(src, fd, offset, block_size)
    finally:
        os.close(src)
    os.ftruncate(fd, size)
    return written


def _copy_range(src: int, fd: int, offset: int, length: int) -> int:
    data = os.pread(src, length, offset)
    os.pwrite(fd, data, offset)
    return len(data)


def _copy_headers(source: Path, fd: int) -> int:
    with source.open("rb") as fh:
        data = fh.read(HEADERS)
    os.pwrite(fd, data, 0)
    return len(data)


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


def _sync(source: Path, fd: int, start: int = 0) -> int:
    """Make the file behind `fd` equal to `source` from byte `start` on, by comparing both whole;
    bytes written. From HEADERS, the chunks fall on DuckDB's blocks.

    Reading both files is the whole cost (two page-cache copies per byte), and the reads release
    the GIL, so one thread per core takes every n-th chunk.
    """
    size = source.stat().st_size
    threads = max(1, min(SYNC_THREADS, os.cpu_count() or 1))
    src = os.open(source, os.O_RDONLY)
    try:
        with ThreadPoolExecutor(threads) as pool:
            written = sum(pool.map(lambda i: _sync_chunks(src, fd, size, i, threads, start), range(threads)))
    finally:
        os.close(src)
    os.ftruncate(fd, size)
    return written


def _sync_chunks(src: int, fd: int, size: int, first: int, step: int, start: int = 0) -> int:
    a, b = bytearray(CHUNK), bytearray(CHUNK)
    written = 0
    for offset in range(start + first * CHUNK, size, step * CHUNK):
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
