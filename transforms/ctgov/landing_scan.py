"""Which landing files are new since a cursor, in bounded batches. Pure file-system logic, no Dagster.

The cursor is one timestamp and the folders seen, by path and identity, so it never grows with the
number of files ever seen. A file counts by max(mtime, ctime): ctime moves whenever a file is created,
renamed in or rewritten and cannot be set back by `cp -p` or rsync, so a copied-in old file is still
noticed; and by when its folder arrived, for a folder the last evaluation did not see at its path
(moved or linked in, a delivery renamed in: `_arrived`). Only files older than a settle time are taken,
which (a) lets writers finish and (b) guarantees every file with the cursor's timestamp was seen in the
same evaluation, so nothing is skipped at the boundary.
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
               settle_ns: int = SETTLE_NS, known: dict[str, str] | None = None,
               ) -> tuple[list[Seen], int, dict[str, str]]:
    """Files under `<landing>/<subdir>` stamped after `cursor_ns` and settled; the new cursor; and the
    folders seen (path under the subfolder -> identity), for the next evaluation's `known` (None: the
    first, or a cursor from before folders were kept)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    horizon = now_ns - settle_ns
    root = landing / subdir
    found: list[Seen] = []
    newest = cursor_ns
    folders: dict[str, str] = {}
    if not root.is_dir():
        return found, cursor_ns, folders
    arrived: dict[str, int] = {str(root): 0}  # folder -> when it (or a folder above it) arrived
    for dirpath, filenames in walk_landing(root):
        folder_stamp = 0
        if dirpath != str(root):
            delivery = subdir == "sites" and os.path.dirname(dirpath) == str(root)
            rel = os.path.relpath(dirpath, root)
            ident, stamp = _arrived(dirpath, delivery, False if known is None else known.get(rel))
            folder_stamp = max(arrived.get(os.path.dirname(dirpath), 0), stamp)
            if ident and stamp <= horizon:  # one still settling is new again next time, with its files
                folders[rel] = ident
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
    return found, newest, folders


def _arrived(folder: str, delivery: bool, known: str | None | bool = False) -> tuple[str | None, int]:
    """The folder's identity (device and inode of the entry itself; for a link, its own and its target)
    and when it arrived whole, or 0, for the folders whose files keep older times: a folder moved in
    (`mv ~/downloads/batch ctgov/`), moved within (`mv sites/upload/D1 sites/D1`, a delivery one level
    too deep put right), linked in (`ln -s`), a site delivery renamed in (the contract's `<id>.partial`
    renamed to `<id>`). Its files count from then: the cursor, already past their times, never saw them.

    `known` is the identity the last evaluation saw at this path (None: no folder there then). A folder
    counts as arrived when that is not its own, at its ctime (a rename sets it): so a folder replaced
    at its path, or a link pointed elsewhere, arrives too. A folder seen at its path before does not,
    whatever its times say: a chmod, or `rsync -a` setting a folder's mtime back, gives any folder a
    new ctime, and a ctgov/ mirror of 100,000 files was requested whole again for one new file. Without
    any folders kept (`known` False: a first evaluation, whose cursor takes every file anyway, or a
    cursor from before they were kept) a link counts from its ctime and a delivery when its ctime
    passed its mtime, as renaming it in does."""
    try:
        link = os.lstat(folder)
        ident = f"{link.st_dev:x}:{link.st_ino:x}"
        if stat.S_ISLNK(link.st_mode):
            ident += f">{os.readlink(folder)}"
    except OSError:
        return None, 0
    if known is not False:
        return ident, 0 if ident == known else link.st_ctime_ns
    if stat.S_ISLNK(link.st_mode):
        return ident, link.st_ctime_ns
    return ident, link.st_ctime_ns if delivery and link.st_ctime_ns > link.st_mtime_ns else 0


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
