"""A delivery CSV that cannot be read names the row and the physical line it stops at, not the header
(found by an adversarial review: a bad byte in row 5 was reported as the header's, by its offset in an
8 KB chunk, and lines after a quoted newline were numbered by record)."""
import json

import pytest

from trialhouse.synth_site import generate_delivery
from transforms.sites.check import check_csv


@pytest.fixture
def delivery(tmp_path):
    (folder,) = generate_delivery(tmp_path, participants=6, sites=1, seed=3)
    return folder, json.loads((folder / "manifest.json").read_text())


def _lines(path):
    return path.read_bytes().split(b"\n")


def test_a_byte_that_is_not_utf8_names_its_row_and_line(delivery):
    folder, manifest = delivery
    path = folder / "ae.csv"
    lines = _lines(path)
    lines[3] = lines[3].replace(b",", b",\xe9", 1)  # a Latin-1 e-acute in data row 3
    path.write_bytes(b"\n".join(lines))
    parsed, problems = check_csv(path, "ae", manifest)
    assert parsed is None and len(problems) == 1
    assert "ae.csv row 3 (line 4): not UTF-8 text (invalid continuation byte" in problems[0].message
    assert problems[0].row == 3


def test_a_field_over_the_csv_modules_limit_names_its_row(delivery):
    folder, manifest = delivery
    path = folder / "ae.csv"
    lines = _lines(path)
    lines[2] = lines[2] + b',"' + b"x" * 200_000 + b'"'
    path.write_bytes(b"\n".join(lines))
    parsed, problems = check_csv(path, "ae", manifest)
    assert parsed is None and len(problems) == 1
    assert "ae.csv row 2 (line 3): not readable as CSV (field larger than field limit" in problems[0].message


def test_rows_after_a_quoted_newline_keep_their_physical_line(delivery):
    folder, manifest = delivery
    path = folder / "ae.csv"
    text = path.read_text()
    header, first, second, *rest = text.split("\n")
    cols = header.split(",")
    values = first.split(",")
    values[cols.index("AETERM")] = '"Headache\nthen nausea"'  # two lines, one record
    bad = second.split(",")
    bad[cols.index("AESEV")] = "EXTREME"
    path.write_text("\n".join([header, ",".join(values), ",".join(bad), *rest]))
    parsed, problems = check_csv(path, "ae", manifest)
    assert [p.message.split(": ", 1)[1].split(":")[0] for p in problems] == ["ae.csv row 2 (line 4) column AESEV"]
