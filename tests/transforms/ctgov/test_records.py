"""Record parsing: orjson on the fast path, the json module's verdicts and messages on every other input."""
import json
from pathlib import Path

import pytest

from transforms.ctgov.records import FileFormatError, _loads

DATA = Path(__file__).resolve().parents[2] / "data" / "ctgov"


def _real() -> bytes:
    return sorted(DATA.glob("NCT*.json"))[0].read_bytes()


def test_real_record_parses_as_the_json_module_parses_it():
    assert _loads(_real(), "x.json") == json.loads(_real())


@pytest.mark.parametrize("variant", [
    lambda b: b"\xef\xbb\xbf" + b,  # UTF-8 BOM
    lambda b: b.decode("utf-8").encode("utf-16"),  # another encoding the json module detects
    lambda b: b.replace(b"{", b'{"_n": NaN, "_big": 123456789012345678901234567890, ', 1),
])
def test_inputs_orjson_refuses_are_still_accepted_as_before(variant):
    data = variant(_real())
    assert _loads(data, "x.json") == json.loads(data)


def test_broken_json_keeps_the_json_module_message():
    data = _real()[:-40]
    with pytest.raises(FileFormatError, match=r"^ctgov/x.json: invalid JSON at line \d+ column \d+: "):
        _loads(data, "ctgov/x.json")


def test_a_slice_of_members_reads_as_zipfile_reads_them_without_the_central_directory(tmp_path, monkeypatch):
    """Worker processes read their slice of the bulk zip from the members' local headers: parsing the
    central directory of a 600,000-member zip took ~350 MB and 5.7 s in every process. Good members give
    the same records as zipfile; damaged ones (a flipped byte in deflated data, in stored data) are held
    with a reason as zipfile's would be, and the next member still reads."""
    import io
    import struct
    import zipfile

    from tests.conftest import study_files
    from transforms.ctgov.records import slice_records, zip_slices

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, p in enumerate(study_files()[:8]):
            zf.write(p, f"ctg-studies/{p.name}", zipfile.ZIP_STORED if i % 3 == 0 else zipfile.ZIP_DEFLATED)
    data = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        infos = zf.infolist()
    for info in (infos[2], infos[3]):  # deflated, stored
        name_len, extra_len = struct.unpack("<2H", data[info.header_offset + 26:info.header_offset + 30])
        data[info.header_offset + 30 + name_len + extra_len + info.compress_size // 2] ^= 0xFF
    path = tmp_path / "z.zip"
    path.write_bytes(bytes(data))

    expected = list(_zipfile_records(path))
    monkeypatch.setattr(zipfile.ZipFile, "__init__", lambda *a, **k: (_ for _ in ()).throw(AssertionError("parsed")))
    slices = zip_slices(path, "z.zip", 3)
    got = [r for s in slices for r in slice_records(path, "z.zip", s)]

    assert [len(s) for s in slices] == [3, 3, 2]
    assert [r.source_record for r in got] == [r.source_record for r in expected]
    damaged = {infos[2].filename, infos[3].filename}
    for g, e in zip(got, expected):
        if g.source_record in damaged:
            assert g.record is e.record is None and g.error.startswith("unreadable zip member") and e.error.startswith("unreadable zip member")
        else:
            assert g == e and g.record is not None


def _zipfile_records(path):
    """The records as zipfile reads the archive: the reference the compact reader is held to."""
    import zipfile

    from transforms.ctgov.records import _member_records
    with zipfile.ZipFile(path) as zf:
        members = [i for i in zf.infolist() if not i.is_dir() and i.filename.lower().endswith(".json")]
        yield from _member_records("z.zip", ((i.filename, lambda i=i: zf.read(i)) for i in members))


def _zipfile_fields(path):
    import zipfile

    from transforms.ctgov.records import _FIELDS
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, tuple(getattr(i, f) for f in _FIELDS)) for i in zf.infolist()
                if not i.is_dir() and i.filename.lower().endswith(".json")]


def _compact_fields(slices):
    from transforms.ctgov.records import _FIELDS
    n = len(_FIELDS)
    return [(name, tuple(s.fields[k * n:(k + 1) * n])) for s in slices for k, name in enumerate(s.names)]


@pytest.mark.parametrize("shape", ["plain", "zip64", "prefixed", "commented"])
def test_the_central_directory_reads_as_zipfile_reads_it(tmp_path, monkeypatch, shape):
    """The run process reads the bulk zip's central directory itself, a name and six integers a member:
    zipfile's ZipInfo objects for 600,000 members took ~390 MB that freeing them did not give back. The
    same members, offsets and sizes as zipfile finds, folders and other files left out, through zip64
    fields (every size and offset past the 32-bit limit, as a registry-sized archive has them), bytes
    before the archive (a self-extractor) and an archive comment."""
    import zipfile

    from tests.conftest import study_files
    from transforms.ctgov.records import read_records, slice_records, zip_slices

    path = tmp_path / "z.zip"
    with monkeypatch.context() as m:
        if shape == "zip64":  # zipfile writes zip64 fields for whatever exceeds its limit
            m.setattr(zipfile, "ZIP64_LIMIT", 0)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.mkdir("ctg-studies")
            members = [("ctg-studies/README.txt", b"not a study")]
            members += [(f"ctg-studies/{p.name}", p.read_bytes()) for p in study_files()[:7]]
            for name, data in members + [("ctg-studies/NCT0000000\u00e9.JSON", b'{"protocolSection": {}}')]:
                with zf.open(name, "w", force_zip64=shape == "zip64") as out:  # the last one has a UTF-8 name
                    out.write(data)
            if shape == "commented":
                zf.comment = b"ClinicalTrials.gov bulk download"
    if shape == "prefixed":
        path.write_bytes(b"#!/bin/sh\nexit 0\n" + path.read_bytes())
    if shape == "zip64":
        assert zipfile.stringEndArchive64 in path.read_bytes()[-200:]

    slices = zip_slices(path, "z.zip", 3)
    assert [len(s) for s in slices] == [3, 3, 2]
    assert _compact_fields(slices) == _zipfile_fields(path)
    assert _studies(r for s in slices for r in slice_records(path, "z.zip", s)) == list(_zipfile_records(path))
    if shape != "prefixed":  # a self-extractor is not taken for a zip by its first bytes
        kind, records = read_records(path, "z.zip")
        assert _studies(records) == list(_zipfile_records(path))


def _studies(records) -> list:
    """The records of the .json members; the one other file is there too, held with its reason."""
    records = list(records)
    other = [r for r in records if r.error == "not a .json member: not read as a study record"]
    assert [r.source_record for r in other] == ["ctg-studies/README.txt"]
    return [r for r in records if r not in other]


@pytest.mark.parametrize("damage", ["not a zip", "truncated directory", "bad directory entry"])
def test_an_unreadable_central_directory_fails_the_file_by_name(tmp_path, damage):
    import zipfile

    from tests.conftest import study_files
    from transforms.ctgov.records import zip_slices

    path = tmp_path / "bulk.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for p in study_files()[:3]:
            zf.write(p, p.name)
    data = bytearray(path.read_bytes())
    start = data.rindex(zipfile.stringCentralDir)
    if damage == "not a zip":
        data = bytearray(b"PK\x03\x04" + b"\0" * 100)
    elif damage == "truncated directory":
        del data[start + 10:start + 30]
    else:
        data[start:start + 4] = b"PK\x09\x09"
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=r"^ctgov/bulk.zip: unreadable zip archive \("):
        zip_slices(path, "ctgov/bulk.zip", 2)
