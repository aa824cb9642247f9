"""Which landing files are new since a cursor, in bounded batches. Pure file-system logic, no Dagster.

The cursor is one timestamp, so it never grows with the number of files ever seen. A file counts by
max(mtime, ctime): ctime moves whenever a file is created, renamed in or rewritten and cannot be set
back by `cp -p` or rsync, so a copied-in old file is still noticed; and by when its folder arrived,
for a folder linked in, or a delivery renamed in (`_moved_in`). Only files older than a settle
time are taken, which (a) lets writers finish and (b) guarantees every file with the cursor's
timestamp was seen in the same evaluation, so nothing is skipped at the boundary.
"""
from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from transforms.ctgov.ingest import walk_landing

SETTLE_NS = 2_000_000_000
MAX_FILES_PER_RUN = 500
MAX_BYTES_PER_RUN = 2 * 1024**3


@dataclass(frozen=True)
class Seen:
    rel: str
    size: int
    stamp_ns: int


def scan_since(landing: Path, subdir: str, cursor_ns: int, now_ns: int | None = None,
               settle_ns: int = SETTLE_NS) -> tuple[list[Seen], int]:
    """Files under `<landing>/<subdir>` stamped after `cursor_ns` and settled; and the new cursor."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    horizon = now_ns - settle_ns
    root = landing / subdir
    found: list[Seen] = []
    newest = cursor_ns
    if not root.is_dir():
        return found, cursor_ns
    arrived: dict[str, int] = {str(root): 0}  # folder -> when it (or a folder above it) was linked or renamed in
    for dirpath, filenames in walk_landing(root):
        delivery = subdir == "sites" and os.path.dirname(dirpath) == str(root)
        folder_stamp = max(arrived.get(os.path.dirname(dirpath), 0), _moved_in(dirpath, delivery)) \
            if dirpath != str(root) else 0
        arrived[dirpath] = folder_stamp
        for name in filenames:
            p = Path(dirpath) / name
            try:
                st = p.stat()
            except OSError:  # vanished between listing and stat
                continue
            stamp = max(st.st_mtime_ns, st.st_ctime_ns, folder_stamp)
            if cursor_ns < stamp <= horizon:
                found.append(Seen(p.relative_to(landing).as_posix(), st.st_size, stamp))
                newest = max(newest, stamp)
    found.sort(key=lambda s: (s.stamp_ns, s.rel))
    return found, newest


def _moved_in(folder: str, delivery: bool) -> int:
    """When a folder arrived whole, or 0, for the folders whose files keep older times: a linked folder
    (`ln -s ~/downloads ctgov/`) is as new as its link, and a site delivery renamed in (the contract's
    `<id>.partial` renamed to `<id>`) has a ctime later than its mtime. Its files count from then, or
    the cursor, already past their times, never saw them.

    Only a delivery's own folder is read that way: a chmod, or `rsync -a` setting a folder's mtime back,
    gives any folder that state, and a ctgov/ mirror of 100,000 files was requested whole again for
    one new file. A delivery re-requested is re-hashed and found unchanged, in milliseconds. A folder
    moved into ctgov/ (not linked) is read by the next full run, not by the sensor."""
    try:
        link = os.lstat(folder)
        if stat.S_ISLNK(link.st_mode):
            return link.st_ctime_ns
        return link.st_ctime_ns if delivery and link.st_ctime_ns > link.st_mtime_ns else 0
    except OSError:
        return 0


def batches(files: list[Seen], max_files: int = MAX_FILES_PER_RUN, max_bytes: int = MAX_BYTES_PER_RUN) -> list[list[Seen]]:
    """Bounded runs: a burst of 5,000 files becomes 10 runs, a 10 GB zip a run of its own."""
    out: list[list[Seen]] = []
    cur: list[Seen] = []
    size = 0
    for f in files:
        if cur and (len(cur) >= max_files or size + f.size > max_bytes):
            out.append(cur)
            cur, size = [], 0
        cur.append(f)
        size += f.size
    if cur:
        out.append(cur)
    return out


def run_key(subdir: str, batch: list[Seen]) -> str:
    """Same files with the same stamps, same key: a re-evaluation requests nothing new."""
    h = hashlib.sha256()
    for f in batch:
        h.update(f"{f.rel}\0{f.stamp_ns}\0".encode())
    return f"{subdir}:{h.hexdigest()[:32]}"
