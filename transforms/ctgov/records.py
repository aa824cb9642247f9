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

from transforms.ctgov.identity import NCT_ID_FIELD, get_path

KIND_STUDY = "ctgov_study"
KIND_PAGE = "ctgov_page"
# A JSON array of study records (an extract a script or a download wrote): refused whole before, so none
# of its studies was named anywhere, neither published nor quarantined.
KIND_LIST = "ctgov_study_list"
KIND_ZIP = "ctgov_zip"


class FileFormatError(Exception):
    """The file as a whole cannot be read: not JSON, not a zip, not an API v2 shape."""


# The registry's largest study is 3.6 MB: a record nine times that is not a study, and a bigger zip
# member is not inflated at all (a 169 KB zip held a 150 MB member, and inserting it ran DuckDB out of
# memory). A JSON file (a study or an API page of up to 1,000 studies) is read whole, so it is capped too.
MAX_RECORD_BYTES = 32 * 1024 * 1024
MAX_JSON_FILE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class RawRecord:
    """One study record as found in a file, or the reason it is unusable."""

    source_record: str  # '' for a single-study file, 'studies[i]' in a page, the member name in a zip
    record: dict | None  # the parsed study, when it parsed to a JSON object
    text: str | None  # the study's own text as received (single files, zip members), else None
    error: str | None = None
    field: str | None = None
    nct_id: str | None = None  # of a study held whole (a key named twice) whose NCT id is still plain


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
    if isinstance(obj, list) and _holds_a_study(obj):
        return KIND_LIST
    if isinstance(obj, dict):
        keys = ", ".join(sorted(obj)[:6]) or "no keys"
        raise FileFormatError(
            f"{display}: not a ClinicalTrials.gov API v2 study or page "
            f"(expected 'protocolSection' or 'studies' at the top level, found: {keys})"
        )
    if isinstance(obj, list):
        raise FileFormatError(f"{display}: not a ClinicalTrials.gov API v2 study or page (top level is a JSON list "
                              f"of {len(obj)} with no study record in it)")
    raise FileFormatError(
        f"{display}: not a ClinicalTrials.gov API v2 study or page (top level is a JSON {type(obj).__name__})"
    )


def _holds_a_study(items: list) -> bool:
    """Whether a JSON list is a list of study records: one holding a study. Its other elements are held
    one by one, named by their place; a list of anything else (another tool's JSON) is refused whole."""
    return any(isinstance(x, dict) and "protocolSection" in x for x in items)


def parse_payload(text: str | bytes) -> object:
    """A stored study payload, parsed fast; Python's parser for what orjson refuses (NaN, >64-bit ints),
    which ingestion accepted."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _loads(data: bytes, display: str) -> object:
    return _parse(data, display)[0]


def _parse(data: bytes, display: str) -> tuple[object, bool]:
    """The parsed JSON and whether orjson parsed it: orjson where it accepts the bytes (~3x faster
    than the json module, 0.16 ms per study); otherwise the json module decides, so what is accepted
    and every error message stay its own (a BOM, NaN, integers beyond 64 bits, lone surrogates).
    The text is decoded as the json module detects it (UTF-8, or UTF-16 or 32 by their byte patterns),
    the same decoding `decoded` gives the stored text, and may be nested no deeper than Python parses
    (orjson stops at 1,024 levels, the json module at the interpreter's recursion limit)."""
    try:
        return orjson.loads(data), True
    except orjson.JSONDecodeError:
        pass
    try:
        text = decoded(data)
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{display}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text), False
    except json.JSONDecodeError as exc:
        raise FileFormatError(
            f"{display}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise FileFormatError(f"{display}: JSON nested too deeply to be a study record") from None


def decoded(data: bytes) -> str:
    """A record's bytes as text, in the encoding the json module detects (a UTF-8 BOM dropped)."""
    return data.decode(json.detect_encoding(data))


def _page_text(study: object, fast: bool) -> str | None:
    """A study cut out of a page the json module parsed, serialised by it: orjson would write its NaN
    as null, silently, where the same study in a file of its own is held for it. None when orjson
    parsed the page (nothing it could not write) or the json module cannot write it back either."""
    if fast:
        return None
    try:
        return json.dumps(study, ensure_ascii=False)
    except (RecursionError, ValueError):
        return None


def _study_record(obj: object, source_record: str, text: str | None, twice: dict[str, str] | None = None) -> RawRecord:
    if not isinstance(obj, dict):
        return RawRecord(source_record, None, text, f"record is a JSON {type(obj).__name__}, not an object", "$")
    if twice:
        field = next(iter(twice))
        nct_id = None if NCT_ID_FIELD in twice else named_nct_id(obj)
        return RawRecord(source_record, None, text if text is not None else _json_text(obj), twice[field], field,
                         nct_id)
    return RawRecord(source_record, obj, text)


def named_nct_id(record: dict) -> str | None:
    """The NCT id a record names, when it names one as a plain string: held records are keyed by it, so
    `quarantine list --nct` finds them and their reason says which study they are."""
    value = get_path(record, NCT_ID_FIELD)
    value = value.strip() if isinstance(value, str) else None
    return value if value and len(value) <= 64 else None  # an id, not a document


def _json_text(obj: object) -> str | None:
    """A held page study as text for quarantine.record.payload: ASCII escapes, as ingest's `_held_text`
    writes them, since it may hold a lone surrogate no UTF-8 column takes (it failed the whole file)."""
    try:
        return json.dumps(obj)
    except (RecursionError, ValueError):
        return None


# ---------------------------------------------------------------- a key named twice in one object
# JSON leaves an object that names a key twice to the parser: orjson and the json module keep the last
# value, DuckDB's JSON functions (the registry gate's and the OMOP extract's reads of the stored payload)
# the first. Such a study was published with one title in FHIR and another in OMOP, and the value not
# kept was dropped without a word. It is held instead, naming the key and the values it was given.
#
# Found without a second parse: every key/value pair in the text has one ':' outside strings, and a
# re-serialisation writes every string as it was (neither orjson nor the json module escapes ':'), so
# the text has more ':' than its re-serialisation exactly when pairs were dropped (~20 us of CPU a
# study, against ~24 to parse it). A text writing ':' in a string as \u003a can hide a drop from the
# count, never fake one. Only then does the json module parse it again, to say where.

def named_twice(data: bytes, obj: object, fast: bool) -> dict[str, str]:
    """{JSON path: why} of the keys named more than once in one object of `data`, in document order;
    {} when there are none. `obj` is `data` parsed, by orjson when `fast`."""
    try:
        if fast:
            if data.count(b":") <= orjson.dumps(obj).count(b":"):
                return {}
        elif decoded(data).count(":") <= json.dumps(obj, ensure_ascii=False).count(":"):
            return {}
    except (orjson.JSONEncodeError, TypeError, ValueError, RecursionError):
        pass  # not written back (nested too deeply, say): parsed again below to find out
    try:
        tree = json.loads(decoded(data), object_pairs_hook=_Pairs.of)
    except (RecursionError, ValueError):
        return {}
    # a lone surrogate (\ud800) in a key or value is written as its escape: no UTF-8 column takes it
    return {_utf8(path): _utf8(_twice_reason(path, values)) for path, values in _twice(tree, "$")}


def _utf8(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class _Pairs(dict):
    """An object as the json module read it, with the values of each key it named more than once with
    different values."""

    twice: dict[str, list] = {}

    @classmethod
    def of(cls, pairs: list[tuple[str, object]]) -> dict:
        obj = cls(pairs)
        if len(obj) < len(pairs):
            obj.twice = {}
            for key, value in pairs:
                obj.twice.setdefault(key, []).append(value)
            # the same value twice is read the same by every parser: nothing to tell apart
            obj.twice = {k: v for k, v in obj.twice.items() if len({json.dumps(x, sort_keys=True) for x in v}) > 1}
        return obj


def _twice(node: object, path: str) -> Iterator[tuple[str, list]]:
    stack = [(node, path)]
    while stack:  # depth first in document order, without recursion (any depth the parser read)
        node, path = stack.pop()
        if isinstance(node, _Pairs):
            for key, values in node.twice.items():
                yield _child(path, key), values
            stack += reversed([(v, _child(path, k)) for k, v in node.items()])
        elif isinstance(node, list):
            stack += reversed([(v, f"{path}[{i}]") for i, v in enumerate(node)])


def _child(path: str, key: str) -> str:
    return key if path == "$" else f"{path}.{key}"


def _twice_reason(path: str, values: list) -> str:
    shown = ", ".join(_brief(v) for v in values)
    return (f"{path} is named {len(values)} times in one object ({shown}): JSON parsers keep different ones "
            "(DuckDB the first, Python the last), so which one the record means cannot be told")


def _brief(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _within(twice: dict[str, str], prefix: str) -> dict[str, str]:
    """The keys named twice inside `prefix` (a page's study), with paths and reasons relative to it."""
    cut = len(prefix) + 1
    return {path[cut:]: why.replace(path, path[cut:], 1) for path, why in twice.items()
            if path.startswith(prefix + ".")}


def read_records(path: Path, display: str) -> tuple[str, Iterator[RawRecord]]:
    """Return the file's kind and an iterator over its records.

    Raises FileFormatError when the file as a whole is unreadable. `display` is the
    landing-relative path used in messages.
    """
    kind = detect_kind(path)
    if kind == KIND_ZIP:
        slices = zip_slices(path, display, 2_000)  # an unreadable archive is reported here, not when read
        return KIND_ZIP, zip_records(path, display, slices)
    size = path.stat().st_size
    if size > MAX_JSON_FILE_BYTES:
        raise FileFormatError(f"{display}: {size / 2**20:.0f} MB, more than a ClinicalTrials.gov study or API page "
                              f"can be ({MAX_JSON_FILE_BYTES // 2**20} MB)")
    data = path.read_bytes()
    obj, fast = _parse(data, display)
    kind = _classify_json(obj, display)
    twice = named_twice(data, obj, fast)
    if kind == KIND_STUDY:
        return kind, iter([_study_record(obj, "", decoded(data), twice)])
    if kind == KIND_LIST:
        return kind, _list_records(obj, fast, "", twice)
    return kind, _page_records(obj, fast, "", twice, display)


def _page_records(page: dict, fast: bool, prefix: str, twice: dict[str, str], display: str) -> Iterator[RawRecord]:
    """A page's studies, each held alone for a key it names twice. A page naming `studies` twice is
    refused whole: one list of studies would go unread without a word."""
    if "studies" in twice:
        raise FileFormatError(f"{display}{'!' + prefix[:-1] if prefix else ''}: {twice['studies']}")
    return (_study_record(s, f"{prefix}studies[{i}]", _page_text(s, fast), _within(twice, f"studies[{i}]"))
            for i, s in enumerate(page["studies"]))


def _list_records(items: list, fast: bool, prefix: str, twice: dict[str, str]) -> Iterator[RawRecord]:
    """A study list's elements, each a record named by its place (`[3]`), held alone as a page's are."""
    return (_study_record(s, f"{prefix}[{i}]", _page_text(s, fast), _within(twice, f"$[{i}]"))
            for i, s in enumerate(items))


@dataclass(frozen=True)
class MemberSlice:
    """Where some members of an archive lie, compactly: per member its name and six integers (see
    _FIELDS), so a worker reads them from their local headers. zipfile's ZipInfo objects for a
    600,000-member bulk zip took ~390 MB, and freeing them gave back almost nothing: the names kept
    alive for the slices pinned the memory they were allocated in, for the rest of the run (measured)."""

    names: tuple[str, ...]
    fields: array
    # Members beside these that are not read (folders aside), as (name, why): not `.json` files, or
    # names that are not the UTF-8 their flag says. Each is held with its reason.
    skipped: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.names)


_FIELDS = ("header_offset", "compress_type", "compress_size", "file_size", "CRC", "flag_bits")
_CENTRAL = struct.Struct(zipfile.structCentralDir)  # 46 bytes
_ZIP64_EXTRA = 0x0001
_UTF8_NAME = 0x800


def zip_slices(path: Path, display: str, size: int) -> list[MemberSlice]:
    """The archive's study members (JSON files, not folders; other files are listed with a slice as
    skipped, so each is held with its reason), in archive order, in slices of `size`:
    its central directory read as zipfile reads it (archive comments, zip64, bytes before the
    archive), without an object per member."""
    try:
        with open(path, "rb") as fh:
            try:
                end = zipfile._EndRecData(fh)  # the end record, zip64's included: zipfile's own reader
            except OSError:
                end = None
            if not end:
                raise zipfile.BadZipFile("File is not a zip file")
            size_cd, offset_cd = end[zipfile._ECD_SIZE], end[zipfile._ECD_OFFSET]
            concat = end[zipfile._ECD_LOCATION] - size_cd - offset_cd  # bytes before the archive
            if end[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
                concat -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
            if offset_cd + concat < 0:
                raise zipfile.BadZipFile("Bad offset for central directory")
            fh.seek(offset_cd + concat)
            directory = fh.read(size_cd)
        return _directory_slices(directory, concat, size)
    except zipfile.BadZipFile as exc:
        raise FileFormatError(f"{display}: unreadable zip archive ({exc})") from None


def _directory_slices(directory: bytes, concat: int, size: int) -> list[MemberSlice]:
    slices: list[MemberSlice] = []
    names: list[str] = []
    skipped: list[tuple[str, str]] = []
    fields = array("q")
    pos, end = 0, len(directory)
    while pos < end:
        if pos + _CENTRAL.size > end:
            raise zipfile.BadZipFile("Truncated central directory")
        cd = _CENTRAL.unpack_from(directory, pos)
        if cd[0] != zipfile.stringCentralDir:
            raise zipfile.BadZipFile("Bad magic number for central directory")
        flags, method, crc, csize, fsize = cd[5], cd[6], cd[9], cd[10], cd[11]
        name_len, extra_len, comment_len, offset = cd[12], cd[13], cd[14], cd[18]
        if cd[3] > zipfile.MAX_EXTRACT_VERSION:
            raise zipfile.BadZipFile(f"zip file version {cd[3] / 10:.1f} is not supported")
        pos += _CENTRAL.size
        raw_name = directory[pos:pos + name_len]
        pos += name_len
        extra = directory[pos:pos + extra_len]
        pos += extra_len + comment_len
        try:
            name = raw_name.decode("utf-8" if flags & _UTF8_NAME else "cp437")
        except UnicodeDecodeError:  # flagged UTF-8 and is not: failed the whole archive, its good members too
            skipped.append((raw_name.split(b"\x00", 1)[0].decode("utf-8", "backslashreplace"),
                            "member name is not UTF-8 text though its flag says so: not read"))
            continue
        name = name.split("\x00", 1)[0]  # as ZipInfo cuts a name at a NUL
        if name.endswith("/"):
            continue
        if not name.lower().endswith(".json"):
            skipped.append((name, "not a .json member: not read as a study record"))
            continue
        if extra:
            fsize, csize, offset = _zip64_sizes(extra, fsize, csize, offset)
        names.append(name)
        fields.extend((offset + concat, method, csize, fsize, crc, flags))
        if len(names) == size:
            slices.append(MemberSlice(tuple(names), fields, tuple(skipped)))
            names, fields, skipped = [], array("q"), []
    if names or skipped:
        slices.append(MemberSlice(tuple(names), fields, tuple(skipped)))
    return slices


def _zip64_sizes(extra: bytes, fsize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Sizes and offset a zip64 extra field carries in place of 0xFFFFFFFF (ZipInfo._decodeExtra)."""
    while len(extra) >= 4:
        tp, ln = struct.unpack_from("<HH", extra)
        if ln + 4 > len(extra):
            raise zipfile.BadZipFile("Corrupt extra field %04x (size=%d)" % (tp, ln))
        if tp == _ZIP64_EXTRA:
            data, field = extra[4:ln + 4], ""
            try:
                if fsize in (0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF):
                    field = "File size"
                    fsize, = struct.unpack_from("<Q", data)
                    data = data[8:]
                if csize == 0xFFFF_FFFF:
                    field = "Compress size"
                    csize, = struct.unpack_from("<Q", data)
                    data = data[8:]
                if offset == 0xFFFF_FFFF:
                    field = "Header offset"
                    offset, = struct.unpack_from("<Q", data)
            except struct.error:
                raise zipfile.BadZipFile(f"Corrupt zip64 extra field. {field} not found.") from None
        extra = extra[ln + 4:]
    return fsize, csize, offset


def slice_records(path: str | Path, display: str, members: MemberSlice) -> Iterator[RawRecord]:
    """The records of a slice of an archive's members, read straight from their local headers."""
    with open(path, "rb") as fh:
        n = len(_FIELDS)
        yield from _member_records(display, ((name, partial(_read_member, fh, name, *members.fields[k * n:(k + 1) * n]))
                                             for k, name in enumerate(members.names)))
    for name, why in members.skipped:
        yield RawRecord(name, None, None, why, "$")


def zip_records(path: str | Path, display: str, slices: list[MemberSlice]) -> Iterator[RawRecord]:
    """The records of the members `slices` name, in order, in this process."""
    for part in slices:
        yield from slice_records(path, display, part)


_LOCAL_HEADER = struct.Struct(zipfile.structFileHeader)  # 30 bytes; name and extra lengths are its last two


def _read_member(fh, name: str, offset: int, method: int, csize: int, size: int, crc: int, flags: int) -> bytes:
    """A member's bytes, checked as zipfile checks them (header magic, sizes, CRC-32)."""
    if flags & 0x1:
        raise RuntimeError(f"{name!r} is encrypted")
    if size > MAX_RECORD_BYTES:
        raise RuntimeError(f"{size / 2**20:.1f} MB uncompressed, more than a study record can be "
                           f"({MAX_RECORD_BYTES // 2**20} MB); not inflated")
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
            obj, fast = _parse(data, f"{display}!{member}")
        except FileFormatError as exc:
            yield RawRecord(member, None, data.decode("utf-8", "replace")[:100_000], str(exc).split(": ", 1)[1], "$")
            continue
        twice = named_twice(data, obj, fast)
        if isinstance(obj, dict) and isinstance(obj.get("studies"), list):
            try:
                yield from _page_records(obj, fast, f"{member}!", twice, display)
            except FileFormatError as exc:
                yield RawRecord(member, None, None, str(exc).split(": ", 1)[1], "studies")
        elif isinstance(obj, list) and _holds_a_study(obj):
            yield from _list_records(obj, fast, f"{member}!", twice)
        else:
            yield _study_record(obj, member, decoded(data), twice)
