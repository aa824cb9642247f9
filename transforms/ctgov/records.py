"""Reading ClinicalTrials.gov API v2 registry files into individual study records.

Three shapes arrive in the landing folder: a single study (`GET /studies/{nctId}`), an API
page (`GET /studies`, `{"studies": [...], "nextPageToken": ...}`) and the bulk download zip
(one JSON file per study, ~600,000 members, ~10 GB unzipped). The zip is read member by member
so memory stays bounded by the largest single study (3.6 MB), never the archive.

Every problem is reported as a `RecordError` that names the file, the record and the field,
so one bad record never hides the good ones next to it.
"""
from __future__ import annotations

import json
import struct
import zipfile
import zlib
from array import array
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import orjson

KIND_STUDY = "ctgov_study"
KIND_PAGE = "ctgov_page"
KIND_ZIP = "ctgov_zip"


class FileFormatError(Exception):
    """The file as a whole cannot be read: not JSON, not a zip, not an API v2 shape."""


@dataclass(frozen=True)
class RawRecord:
    """One study record as found in a file, or the reason it is unusable."""

    source_record: str  # '' for a single-study file, 'studies[i]' in a page, the member name in a zip
    record: dict | None  # the parsed study, when it parsed to a JSON object
    text: str | None  # the study's own text as received (single files, zip members), else None
    error: str | None = None
    field: str | None = None


def detect_kind(path: Path) -> str:
    """Zip by magic number, otherwise JSON shape decided after parsing."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return KIND_ZIP
    return "json"


def _classify_json(obj: object, display: str) -> str:
    if isinstance(obj, dict) and isinstance(obj.get("studies"), list):
        return KIND_PAGE
    if isinstance(obj, dict) and "protocolSection" in obj:
        return KIND_STUDY
    if isinstance(obj, dict):
        keys = ", ".join(sorted(obj)[:6]) or "no keys"
        raise FileFormatError(
            f"{display}: not a ClinicalTrials.gov API v2 study or page "
            f"(expected 'protocolSection' or 'studies' at the top level, found: {keys})"
        )
    raise FileFormatError(
        f"{display}: not a ClinicalTrials.gov API v2 study or page (top level is a JSON {type(obj).__name__})"
    )


def parse_payload(text: str | bytes) -> object:
    """A stored study payload, parsed fast; Python's parser for what orjson refuses (NaN, >64-bit ints),
    which ingestion accepted."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _loads(data: bytes, display: str) -> object:
    """orjson where it accepts the bytes (~3x faster than the json module, 0.16 ms per study);
    otherwise the json module decides, so what is accepted and every error message stay its own
    (a BOM, UTF-16, NaN, integers beyond 64 bits, lone surrogates)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{display}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise FileFormatError(
            f"{display}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def _study_record(obj: object, source_record: str, text: str | None) -> RawRecord:
    if not isinstance(obj, dict):
        return RawRecord(source_record, None, text, f"record is a JSON {type(obj).__name__}, not an object", "$")
    return RawRecord(source_record, obj, text)


def read_records(path: Path, display: str) -> tuple[str, Iterator[RawRecord]]:
    """Return the file's kind and an iterator over its records.

    Raises FileFormatError when the file as a whole is unreadable. `display` is the
    landing-relative path used in messages.
    """
    kind = detect_kind(path)
    if kind == KIND_ZIP:
        return KIND_ZIP, _iter_zip(open_zip(path, display), display)
    data = path.read_bytes()
    obj = _loads(data, display)
    kind = _classify_json(obj, display)
    if kind == KIND_STUDY:
        return kind, iter([RawRecord("", obj, data.decode("utf-8-sig"))])
    return kind, (_study_record(s, f"studies[{i}]", None) for i, s in enumerate(obj["studies"]))


def open_zip(path: Path, display: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise FileFormatError(f"{display}: unreadable zip archive ({exc})") from None


def zip_members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The archive's study members (JSON files), in archive order."""
    return [i for i in zf.infolist() if not i.is_dir() and i.filename.lower().endswith(".json")]


def _iter_zip(zf: zipfile.ZipFile, display: str) -> Iterator[RawRecord]:
    with zf:
        yield from zip_records(zf, display, zip_members(zf))


def zip_records(zf: zipfile.ZipFile, display: str, members: list[zipfile.ZipInfo]) -> Iterator[RawRecord]:
    """The records of `members` of an open archive."""
    return _member_records(display, ((i.filename, partial(zf.read, i)) for i in members))


@dataclass(frozen=True)
class MemberSlice:
    """Where some members of an archive lie, compactly, so a worker process reads them without parsing
    the archive's central directory: as ZipInfo objects, a 600,000-member bulk zip's directory takes
    ~350 MB and 5.7 s to parse (measured), and the run process and every worker each held one.
    Per member: its name, and six integers (see _FIELDS)."""

    names: tuple[str, ...]
    fields: array

    def __len__(self) -> int:
        return len(self.names)


_FIELDS = ("header_offset", "compress_type", "compress_size", "file_size", "CRC", "flag_bits")


def member_slices(members: list[zipfile.ZipInfo], size: int) -> list[MemberSlice]:
    """`members` (archive order) in slices of `size`."""
    return [MemberSlice(tuple(i.filename for i in part), array("q", [getattr(i, f) for i in part for f in _FIELDS]))
            for part in (members[k:k + size] for k in range(0, len(members), size))]


def slice_records(path: str | Path, display: str, members: MemberSlice) -> Iterator[RawRecord]:
    """The records of a slice of an archive's members, read straight from their local headers."""
    with open(path, "rb") as fh:
        n = len(_FIELDS)
        yield from _member_records(display, ((name, partial(_read_member, fh, name, *members.fields[k * n:(k + 1) * n]))
                                             for k, name in enumerate(members.names)))


_LOCAL_HEADER = struct.Struct(zipfile.structFileHeader)  # 30 bytes; name and extra lengths are its last two


def _read_member(fh, name: str, offset: int, method: int, csize: int, size: int, crc: int, flags: int) -> bytes:
    """A member's bytes, checked as zipfile checks them (header magic, sizes, CRC-32)."""
    if flags & 0x1:
        raise RuntimeError(f"{name!r} is encrypted")
    fh.seek(offset)
    head = fh.read(_LOCAL_HEADER.size)
    if len(head) != _LOCAL_HEADER.size:
        raise EOFError("truncated local file header")
    fields = _LOCAL_HEADER.unpack(head)
    if fields[0] != zipfile.stringFileHeader:
        raise zipfile.BadZipFile("Bad magic number for file header")
    fh.seek(fields[-2] + fields[-1], 1)
    raw = fh.read(csize)
    if len(raw) != csize:
        raise EOFError("truncated member data")
    if method == zipfile.ZIP_STORED:
        data = raw
    elif method == zipfile.ZIP_DEFLATED:
        data = zlib.decompressobj(-15).decompress(raw, size + 1)  # never more than the declared size + 1
    else:
        raise NotImplementedError(f"compression method {method} is not supported")
    if len(data) != size or zlib.crc32(data) != crc:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {name!r}")
    return data


def _member_records(display: str, members: Iterator[tuple[str, Callable[[], bytes]]]) -> Iterator[RawRecord]:
    for member, read in members:
        try:
            data = read()
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
            yield RawRecord(member, None, None, f"unreadable zip member ({exc})", "$")
            continue
        try:
            obj = _loads(data, f"{display}!{member}")
        except FileFormatError as exc:
            yield RawRecord(member, None, data.decode("utf-8", "replace")[:100_000], str(exc).split(": ", 1)[1], "$")
            continue
        if isinstance(obj, dict) and isinstance(obj.get("studies"), list):
            for i, s in enumerate(obj["studies"]):
                yield _study_record(s, f"{member}!studies[{i}]", None)
        else:
            yield _study_record(obj, member, data.decode("utf-8-sig"))
