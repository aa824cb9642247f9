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
    from transforms.ctgov.records import member_slices, slice_records, zip_members, zip_records

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

    with zipfile.ZipFile(path) as zf:
        members = zip_members(zf)
        expected = list(zip_records(zf, "z.zip", members))
        slices = member_slices(members, 3)
    monkeypatch.setattr(zipfile.ZipFile, "__init__", lambda *a, **k: (_ for _ in ()).throw(AssertionError("parsed")))
    got = [r for s in slices for r in slice_records(path, "z.zip", s)]

    assert [len(s) for s in slices] == [3, 3, 2]
    assert [r.source_record for r in got] == [r.source_record for r in expected]
    damaged = {infos[2].filename, infos[3].filename}
    for g, e in zip(got, expected):
        if g.source_record in damaged:
            assert g.record is e.record is None and g.error.startswith("unreadable zip member") and e.error.startswith("unreadable zip member")
        else:
            assert g == e and g.record is not None
