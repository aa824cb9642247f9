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
