import copy
import json

import pytest

from tests.conftest import CTGOV, study_files
from transforms.ctgov.identity import IdentityError, content_hash, identify, parse_partial_date


def load(name):
    return json.loads((CTGOV / name).read_text())


def test_every_real_record_has_an_identity():
    for path in study_files():
        ident = identify(json.loads(path.read_text()))
        assert ident.nct_id == path.stem
        assert len(ident.content_hash) == 64


def test_version_holder_does_not_change_the_hash():
    a = load("versions/2025-12-23_NCT01967030.json")
    b = load("versions/2026-01-02_NCT01967030.json")
    assert a["derivedSection"]["miscInfoModule"]["versionHolder"] != b["derivedSection"]["miscInfoModule"]["versionHolder"]
    assert content_hash(a) == content_hash(b)


def test_real_content_change_changes_the_hash():
    assert content_hash(load("NCT05766735.json")) != content_hash(load("versions/2025-12-23_NCT05766735.json"))


def test_hashing_does_not_mutate_the_record():
    rec = load("NCT00184067.json")
    before = copy.deepcopy(rec)
    content_hash(rec)
    assert rec == before


def test_missing_nct_id_names_the_field():
    rec = load("NCT00184067.json")
    del rec["protocolSection"]["identificationModule"]["nctId"]
    with pytest.raises(IdentityError) as err:
        identify(rec)
    assert err.value.field == "protocolSection.identificationModule.nctId"


@pytest.mark.parametrize("text,expected", [("2004-05", (2004, 5, 1)), ("2023-09-08", (2023, 9, 8)), ("2004", (2004, 1, 1))])
def test_partial_dates(text, expected):
    assert parse_partial_date(text).timetuple()[:3] == expected


@pytest.mark.parametrize("text", ["2025-13-40", "May 2004", "", None])
def test_invalid_dates_are_none(text):
    assert parse_partial_date(text) is None
