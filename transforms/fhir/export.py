"""FHIR bulk-data style NDJSON export of one schema's resources, rewritten only where it changed.

Layout follows the FHIR Bulk Data `$export` output: NDJSON files of one resource type each and a
manifest listing them (the spec allows several files per type), so bulk-data clients and loaders
read the export as if a server had produced it.

The files are parts: `<Type>/<part>.ndjson`, where the part is the owning study's NCT id range
(its first 7 characters, about 830 registry studies) or, for resources no study owns (Organization,
Location), `shared-xx`: one of 256 buckets by the md5 of the resource id. A publish rewrites only
the parts its studies touched, so a day's update costs a few files, not the 1 GB `ResearchStudy`
file a whole-type export rewrote every run (8.9 s at 100,000 studies); and it splices the changed
studies' lines into a touched NCT id part rather than reading the whole part from the table again
(see _splice_parts). Studies are stored in NCT order, so a part reads a narrow key range; shared
resources are scattered through the table (each is re-inserted when a study using it is published),
so one `shared` file for all of them read nearly every stored resource of the type again on every
publish (0.9 s at 100,000 studies, and the registry has ~10x their locations) where a bucket reads
a few. Rows are streamed in batches, so memory stays flat for the full registry; a splice holds a
part's file per thread (~8 MB for a ResearchStudy part of the registry) and the current rows of up to
twice SPLICE_STUDIES touched studies.
"""

from __future__ import annotations

import bisect
import json
import os
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from .export_stamps import STAMPS, changed_urls, manifest_is_stamped, write_stamps  # noqa: F401 (STAMPS: callers')
from .export_staging import STAGING, move_in, remove, sweep
from .store import checked_schema

SHARED = "shared"
PREFIX = 7  # "NCT0123": an NCT id range of 10,000 numbers
# The part of a resource row (columns nct_id, id), in SQL; the publish records touched parts with it
# (identifiers from code).
PART_SQL = f"coalesce(left(nct_id, {PREFIX}), '{SHARED}-' || left(md5(id), 2))"
_COUNTS = 'SELECT resource_type, {part}, count(*) FROM "{schema}".resource GROUP BY ALL ORDER BY ALL'
# A batch of one type's parts in one NCT id range: the range lets DuckDB skip row groups by their
# min/max, the part list keeps it exact, and the sort is only as big as the batch.
_OWNED = ('SELECT {part}, CAST(resource AS VARCHAR) FROM "{schema}".resource '
          "WHERE resource_type = ? AND nct_id >= ? AND nct_id < ? AND left(nct_id, {prefix}) = ANY(?::VARCHAR[]) "
          "ORDER BY 1, id")
_SHARED = ('SELECT {part}, CAST(resource AS VARCHAR) FROM "{schema}".resource '
           "WHERE resource_type = ? AND nct_id IS NULL AND {part} = ANY(?::VARCHAR[]) ORDER BY 1, id")
# Resources per query of a whole export. Sorting all 1.2 M resources of 100,000 studies at once ran
# out of memory under a 512 MB cap; batches keep the sort small at any registry size.
BATCH_ROWS = 50_000
_FETCH = 10_000
# Splicing (see _splice_parts): the touched studies' current rows, a batch of parts' studies at a time,
# and every touched part's row count, the check a spliced file must pass.
_STUDY_ROWS = ('SELECT resource_type, left(nct_id, {prefix}), nct_id, id, CAST(resource AS VARCHAR) '
               'FROM "{schema}".resource WHERE nct_id >= ? AND nct_id <= ? AND nct_id = ANY(?::VARCHAR[])')
_PART_COUNTS = ('SELECT resource_type, left(nct_id, {prefix}), count(*) FROM "{schema}".resource '
                "WHERE nct_id IS NOT NULL AND left(nct_id, {prefix}) = ANY(?::VARCHAR[]) GROUP BY ALL")
SPLICE_STUDIES = 2_000  # touched studies per query of their rows
# At most this many files spliced at once, however many workers: each holds a part's file, and the
# kernel's writes and frees, not the cores, bound it.
SPLICE_THREADS = 4


def part_url(rtype: str, part: str) -> str:
    return f"{rtype}/{part}.ndjson"


def export_ndjson(con, schema: str, out_dir: Path, *, transaction_time: str | None = None) -> dict:
    """Write every part of <out_dir>/fhir/ and its manifest.json; return the manifest.

    The parts are written aside (STAGING) and moved in once all are written, then the manifest, then
    what the export no longer lists is deleted. The old parts were deleted first: a whole export
    (a first publish, or the repair of a damaged or half-written one, ~1 minute at 100,000 studies)
    left readers a nearly empty folder until it ended, and one killed part way left it so. Now the
    previous export stands, whole, until the moves (renames on one file system), and a killed export
    leaves it standing; the next one starts its staging afresh. It needs the export's size again in
    free space while it runs."""
    sql_schema = checked_schema(schema)
    target = Path(out_dir) / "fhir"
    target.mkdir(parents=True, exist_ok=True)
    staging = target / STAGING
    remove(staging)  # a killed export's
    staging.mkdir()
    sizes = {(t, p): n for t, p, n in con.execute(_COUNTS.format(schema=sql_schema, part=PART_SQL)).fetchall()}
    counts: dict[tuple[str, str], int] = {}
    for rtype, parts in _batches(sizes):
        counts.update(_write_batch(con, sql_schema, staging, rtype, parts))
    for url in sorted(part_url(*key) for key in counts):
        (target / url).parent.mkdir(exist_ok=True)
        move_in(staging / url, target / url)
    manifest = _write_manifest(target, sql_schema, counts, transaction_time)
    sweep(target, manifest)
    return manifest


def export_parts(con, schema: str, out_dir: Path, parts: set[tuple[str, str]], *,
                 studies: set[str] | None = None, transaction_time: str | None = None,
                 stats: dict | None = None, threads: int = 1) -> dict:
    """Bring the given (resource type, part) files and the manifest up to date; the other parts stand.

    `studies`, when known, are every study whose resources changed in the touched NCT id parts: those
    parts are then spliced (their lines replaced in the existing file, see _splice_parts) rather than
    rewritten from the table. The list must be complete: a changed study left out keeps its old lines
    whenever its part's line count still adds up. `stats`, if given, gets how many parts were spliced.
    Falls back to a whole export when there is no manifest of this layout to build on (a first
    publish, a deleted folder, an export written by an earlier version). `threads` splice files at once.
    """
    return _export_parts(con, schema, out_dir, parts, read_manifest(Path(out_dir) / "fhir"), transaction_time,
                         studies=studies, stats=stats, threads=threads)


def _export_parts(con, schema: str, out_dir: Path, parts: set[tuple[str, str]], previous: dict | None,
                  transaction_time: str | None, *, studies: set[str] | None = None, stats: dict | None = None,
                  threads: int = 1, edited: set[tuple[str, str]] | None = None) -> dict:
    """export_parts on a manifest already read (and its edited parts, when already found)."""
    if previous is None:
        return export_ndjson(con, schema, out_dir, transaction_time=transaction_time)
    sql_schema = checked_schema(schema)
    target = Path(out_dir) / "fhir"
    if os.path.lexists(target / STAGING):  # a whole export that did not finish its sweep
        sweep(target, previous)
    counts = {(o["type"], o["url"].split("/", 1)[1].removesuffix(".ndjson")): o["count"] for o in previous["output"]}
    # A part changed since the export wrote it is written from the table, touched or not: splicing it
    # would keep whatever was edited in its other lines.
    edited = edited_parts(target, previous) if edited is None else edited
    parts = set(parts) | edited
    # Only a part the previous export holds can be spliced; a new NCT id range is written from the table.
    splice = ({k for k in parts if not is_shared(k[1]) and k in counts and k not in edited}
              if studies is not None else set())
    for rtype, group in _touched_batches(parts - splice, counts):  # spliced parts count as gaps here
        counts.update(_write_batch(con, sql_schema, target, rtype, group))
    spliced = 0
    if splice:
        for key in splice:
            del counts[key]
        written, redone = _splice_parts(con, sql_schema, target, splice, studies, threads)
        counts.update(written)
        spliced = len(splice) - redone
    if stats is not None:
        stats["spliced"] = spliced
        stats["edited"] = len(edited)
    return _write_manifest(target, sql_schema, counts, transaction_time)


def _splice_parts(con, sql_schema: str, target: Path, keys: set[tuple[str, str]], studies: set[str],
                  threads: int = 1) -> tuple[dict[tuple[str, str], int], int]:
    """Replace the touched studies' lines in their parts' files with their current rows; returns the
    parts' line counts and how many had to be rewritten from the table instead.

    Rewriting a touched part from the table reads, decompresses and sorts every resource of its NCT id
    range again, and a day's changes spread over the registry touch nearly every part: 1,000 studies
    touched 892 of 909 parts at 100,000 studies, and a day of 6,000 at 600,000 spent 35 s in the
    export. A part's file is sorted by id, and a resource belongs to a study because its id is the
    study's id in lower case, alone or followed by '-' (store.owning_nct_id), so each study's lines are
    one run the file's order finds by bisection: the splice reads only the touched studies' rows, and
    copies the rest of the file as bytes. The result depends only on the table and the untouched lines,
    so splicing a part again (after a run died midway) changes nothing. A spliced part must hold exactly
    as many lines as the table has rows for it; one that does not (a file edited by hand, an id outside
    the convention) is rewritten from the table instead."""
    by_part: dict[str, list[str]] = defaultdict(list)
    for nct in sorted(studies):
        by_part[nct[:PREFIX]].append(nct)
    parts = sorted({p for _, p in keys})
    expected = {(t, p): n for t, p, n in con.execute(_PART_COUNTS.format(schema=sql_schema, prefix=PREFIX),
                                                     [parts]).fetchall()}
    out: dict[tuple[str, str], int] = {}
    redo: list[tuple[str, str]] = []

    def collect(done: list) -> None:
        for key, n in done:
            n = n.result() if isinstance(n, Future) else n
            if n is None:
                redo.append(key)
            elif n:
                out[key] = n

    with _SplicePool(threads) as pool:
        previous: list = []  # the chunk before's files, still being spliced while this chunk's rows are read
        for chunk in _study_chunks(parts, by_part):
            ncts = [n for p in chunk for n in by_part[p]]
            rows: dict[tuple[str, str], dict[str, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
            if ncts:
                cur = con.execute(_STUDY_ROWS.format(schema=sql_schema, prefix=PREFIX), [ncts[0], ncts[-1], ncts])
                while batch := cur.fetchmany(_FETCH):
                    for rtype, part, nct, rid, text in batch:
                        rows[(rtype, part)][nct].append((rid, text))
            collect(previous)
            members = set(chunk)
            previous = [(key, pool.run(_splice_file, target / part_url(*key), key[0], by_part[key[1]],
                                       rows.get(key, {}), expected.get(key, 0)))
                        for key in sorted(k for k in keys if k[1] in members)]
        collect(previous)
    for rtype, part in sorted(redo):
        out.update(_write_batch(con, sql_schema, target, rtype, [part]))
    return out, len(redo)


class _SplicePool:
    """Splices files on `threads` threads (inline with one), while the caller reads the next chunk's rows.

    A splice is mostly the kernel's work: reading the part, writing its new file and, above all,
    freeing the replaced file's blocks on the rename (a day of 6,000 studies at 600,000 rewrites
    7.2 GB of parts, and os.replace alone took ~4 s of the export's ~12), all of it outside the GIL;
    so is DuckDB's query for the next chunk. Only the rows of two chunks are held at once. The same
    spread day's export, alternating with the code before (one thread, bytes.count): 11.6-11.7 ->
    8.4-8.6 s at 600,000 studies (6,000 changed), 2.06-2.10 -> 1.44-1.57 s at 100,000 (1,000)."""

    def __init__(self, threads: int):
        threads = min(threads, SPLICE_THREADS)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="splice") if threads > 1 else None

    def run(self, fn, *args):
        return self._pool.submit(fn, *args) if self._pool else fn(*args)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)


def _study_chunks(parts: list[str], by_part: dict[str, list[str]]):
    """Parts in order, grouped so that a group's studies are about SPLICE_STUDIES: one query's rows."""
    chunk, n = [], 0
    for part in parts:
        if chunk and n + len(by_part.get(part, ())) > SPLICE_STUDIES:
            yield chunk
            chunk, n = [], 0
        chunk.append(part)
        n += len(by_part.get(part, ()))
    if chunk:
        yield chunk


def _splice_file(path: Path, rtype: str, studies: list[str], rows: dict[str, list[tuple[str, str]]],
                 expected: int) -> int | None:
    """Splice one part's file (see _splice_parts); its new line count, or None when it must be rewritten."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if data and not data.endswith(b"\n"):
        return None
    prefix = b'{"resourceType":"' + rtype.encode() + b'","id":"'
    view = memoryview(data)
    pieces: list = []
    pos, lines = 0, _newlines(data)
    try:
        for nct in studies:
            key = nct.lower()
            first = _seek(data, key.encode(), pos, prefix)
            end = _seek(data, key.encode() + b"-\x7f", first, prefix)
            pieces.append(view[pos:first])
            lines -= data.count(b"\n", first, end)
            for rid, text in sorted(rows.get(nct, ())):
                if not (rid == key or rid.startswith(key + "-")):
                    return None  # outside the id convention: its line could be anywhere in the file
                pieces += (text.encode(), b"\n")
                lines += 1
            pos = end
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None  # a line that is not a resource: the file is not what an export wrote
    if lines != expected:
        return None
    if not lines:
        path.unlink()
        return 0
    pieces.append(view[pos:])
    tmp = path.with_name(f".{path.name}.tmp")  # moved into place whole, as _write_batch does
    try:
        with tmp.open("wb") as handle:
            handle.writelines(pieces)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return lines


def _newlines(data: bytes) -> int:
    """The lines of a part, counted by numpy: bytes.count holds the GIL for the whole part (~1.7 ms per
    7.5 MB, the splice threads' one serial step: 2.5 s of a 6,000-study day at 600,000); numpy's
    comparison runs 4x faster and without it. A slice at a time, so its mask is 1 MB, not the part's size."""
    array = np.frombuffer(data, np.uint8)
    return sum(int(np.count_nonzero(array[i:i + _COUNT_SLICE] == 10)) for i in range(0, len(array), _COUNT_SLICE))


_COUNT_SLICE = 1 << 20


def _seek(data: bytes, key: bytes, lo: int, prefix: bytes) -> int:
    """Where the first line at or after byte `lo` whose id is not below `key` starts (the file's end if
    none): a bisection over byte offsets, each probe reading the id of the line it falls in."""
    hi = len(data)
    while lo < hi:
        mid = (lo + hi) // 2
        start = data.rfind(b"\n", lo, mid) + 1 or lo
        end = data.find(b"\n", start)
        if _line_id(data, start, end, prefix) < key:
            lo = end + 1
        else:
            hi = start
    return lo


def _line_id(data: bytes, start: int, end: int, prefix: bytes) -> bytes:
    # Every line the export writes begins with the resource type and id (the mapping's key order); a
    # line that does not is parsed.
    if data.startswith(prefix, start, end):
        close = data.find(b'"', start + len(prefix), end)
        if close > 0:
            return data[start + len(prefix):close]
    return orjson.loads(data[start:end])["id"].encode()


def _touched_batches(parts: set[tuple[str, str]], counts: dict[tuple[str, str], int]):
    """The touched parts in batches, each written from one query; `counts` (the previous manifest's)
    loses them.

    A query per part cost 6.5 s for the 892 of 909 parts a day of 1,000 changed studies touched at
    100,000 studies (a whole export: 4.3 s): each shared bucket's query hashed every shared resource
    of its type again, so a type's touched buckets go in one batch. Owned parts are batched only in
    runs with no untouched part between them, since a batch reads its whole NCT id range (batching
    across gaps took a 10-study day from 0.7 to 1.2 s)."""
    sizes = {key: counts.pop(key, 0) for key in parts}
    yield from _batches({k: n for k, n in sizes.items() if is_shared(k[1])})
    untouched = sorted(k for k in counts if not is_shared(k[1]))
    run: dict[tuple[str, str], int] = {}
    for key in sorted(k for k in sizes if not is_shared(k[1])):
        if run and _gap(untouched, last, key):
            yield from _batches(run)
            run = {}
        run[key], last = sizes[key], key
    if run:
        yield from _batches(run)


def _gap(untouched: list[tuple[str, str]], a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Whether an untouched part lies between parts a and b (type, part) of the sorted order."""
    i = bisect.bisect_right(untouched, a)
    return i < len(untouched) and untouched[i] < b


def is_shared(part: str) -> bool:
    return part.startswith(f"{SHARED}-")


def _valid_part(part: str) -> bool:
    return (is_shared(part) and len(part) == len(SHARED) + 3) or (len(part) == PREFIX and "/" not in part)


def _batches(sizes: dict[tuple[str, str], int]):
    """(type, parts) groups of consecutive parts of one kind holding about BATCH_ROWS resources."""
    group: list[str] = []
    rows, current = 0, None
    for (rtype, part), n in sorted(sizes.items()):
        if group and (rtype != current or is_shared(part) != is_shared(group[0]) or rows + n > BATCH_ROWS):
            yield current, group
            group, rows = [], 0
        group.append(part)
        rows += n
        current = rtype
    if group:
        yield current, group


def _write_batch(con, sql_schema: str, target: Path, rtype: str, parts: list[str]) -> dict[tuple[str, str], int]:
    """Write one type's parts from one query; a listed part with no rows left is removed."""
    if is_shared(parts[0]):
        cur = con.execute(_SHARED.format(schema=sql_schema, part=PART_SQL), [rtype, sorted(parts)])
    else:
        owned = sorted(parts)
        upper = owned[-1][:-1] + chr(ord(owned[-1][-1]) + 1)
        cur = con.execute(_OWNED.format(schema=sql_schema, part=PART_SQL, prefix=PREFIX),
                          [rtype, owned[0], upper, owned])
    counts: dict[tuple[str, str], int] = {}
    handle, current, tmp = None, None, None

    def finish():
        if handle:
            handle.close()
            os.replace(tmp, target / part_url(rtype, current))

    try:
        while rows := cur.fetchmany(_FETCH):
            for part, text in rows:
                if part != current:
                    finish()
                    path = target / part_url(rtype, part)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(f".{path.name}.tmp")  # moved into place whole: no reader sees half a part
                    handle, current = tmp.open("w", encoding="utf-8", newline="\n"), part
                    counts[(rtype, part)] = 0
                handle.write(text)
                handle.write("\n")
                counts[(rtype, part)] += 1
        finish()
        handle = None
    finally:
        if handle:  # an error mid-part: drop the unfinished temporary file
            handle.close()
            tmp.unlink(missing_ok=True)
    for part in parts:
        if (rtype, part) not in counts:
            (target / part_url(rtype, part)).unlink(missing_ok=True)
    return counts


def export_pending(con, out_dir: Path, threads: int = 1, stats: dict | None = None) -> tuple[int, int, dict]:
    """Rewrite the parts of `fhir` publishes left in meta.fhir_export_pending (every part when there is
    no usable export yet); returns how many parts were written, how many of those were spliced (the
    rest were written from the table) and the manifest; `stats` gets how many parts had changed since
    the export wrote them (`edited`), each written again. The caller clears the table once its publish
    is complete, so a crash before that redoes them."""
    pending = set(con.execute("SELECT DISTINCT resource_type, part FROM meta.fhir_export_pending").fetchall())
    previous = read_manifest(Path(out_dir) / "fhir")
    edited = edited_parts(Path(out_dir) / "fhir", previous) if previous is not None else set()
    if stats is not None:
        stats["edited"] = len(edited)
    if previous is not None and not pending and not edited:
        if os.path.lexists(Path(out_dir) / "fhir" / STAGING):  # a whole export that did not finish its sweep
            sweep(Path(out_dir) / "fhir", previous)
        return 0, 0, previous
    done: dict = {}
    manifest = _export_parts(con, "fhir", out_dir, pending, previous, None, studies=pending_studies(con), stats=done,
                             threads=threads, edited=edited)
    written = len(pending | edited) if previous is not None else len(manifest["output"])
    return written, done.get("spliced", 0), manifest


def pending_studies(con) -> set[str] | None:
    """The studies the pending publishes replaced, or None when a run pended NCT id parts without
    recording its studies (written before meta.fhir_export_pending_study): those parts are rewritten."""
    runs = {r for (r,) in con.execute("SELECT DISTINCT run_id FROM meta.fhir_export_pending WHERE NOT starts_with(part, ?)",
                                      [f"{SHARED}-"]).fetchall()}
    recorded = {r for (r,) in con.execute("SELECT DISTINCT run_id FROM meta.fhir_export_pending_study").fetchall()}
    if not runs <= recorded:
        return None
    return {n for (n,) in con.execute("SELECT DISTINCT nct_id FROM meta.fhir_export_pending_study").fetchall()}


def clear_pending(con) -> None:
    """The export's bookkeeping, once the export is written (see meta.fhir_export_pending)."""
    con.execute("DELETE FROM meta.fhir_export_pending")
    con.execute("DELETE FROM meta.fhir_export_pending_study")


def read_manifest(target: Path) -> dict | None:
    """The manifest in <target> if it is of this layout, is the one the export last wrote (export_stamps) and
    every file it lists is there, else None: the next export is then written whole.

    An earlier layout (one file per type, or one `shared` file) is not built on: its files would
    hold resources the new parts hold too. Nor is a manifest edited by hand, or one written before
    the stamps were (once): its counts would be carried into every later manifest."""
    try:
        data = (target / "manifest.json").read_bytes()
        manifest = json.loads(data)
        outputs = manifest["output"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not manifest_is_stamped(target, data):
        return None
    ok = all(isinstance(o, dict) and isinstance(o.get("url"), str) and o["url"].count("/") == 1
             and o["url"].endswith(".ndjson") and _valid_part(o["url"].split("/")[1].removesuffix(".ndjson"))
             and (target / o["url"]).is_file() for o in outputs)
    return manifest if ok else None


def _write_manifest(target: Path, sql_schema: str, counts: dict[tuple[str, str], int],
                    transaction_time: str | None) -> dict:
    manifest = {
        "transactionTime": transaction_time or datetime.now(UTC).isoformat(timespec="seconds"),
        "request": f"trialhouse:export_ndjson?schema={sql_schema}",
        "requiresAccessToken": False,
        "output": [{"type": t, "url": part_url(t, p), "count": n} for (t, p), n in sorted(counts.items())],
        "error": [],
    }
    text = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    write_stamps(target, text, (part_url(*key) for key in counts))
    tmp = target / ".manifest.json.tmp"
    tmp.write_bytes(text)
    os.replace(tmp, target / "manifest.json")
    return manifest


def edited_parts(target: Path, manifest: dict) -> set[tuple[str, str]]:
    """The listed parts changed since the export wrote them (export_stamps): each is written from the
    table by the next export."""
    return {(url.split("/", 1)[0], url.split("/", 1)[1].removesuffix(".ndjson"))
            for url in changed_urls(target, (o["url"] for o in manifest["output"]))}
