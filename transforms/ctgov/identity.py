"""What makes a study record *this* study, and *this* version of it.

The key is the `nctId` inside the record, never the file name: files get renamed, copied and
mislabelled (the shared corpus has a newer NCT02552212 stored as NCT02278341.json).

A version is identified by a hash of the record's content without volatile fields:
`derivedSection.miscInfoModule.versionHolder` is the date the registry snapshot was taken and
changes daily with no real change, so hashing it would store a "new version" every day.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass

import orjson

# JSON paths (as key tuples) that change without a real change in the study.
VOLATILE_FIELDS: tuple[tuple[str, ...], ...] = (("derivedSection", "miscInfoModule", "versionHolder"),)

NCT_ID_FIELD = "protocolSection.identificationModule.nctId"
LAST_UPDATE_FIELD = "protocolSection.statusModule.lastUpdatePostDateStruct.date"
VERSION_HOLDER_FIELD = "derivedSection.miscInfoModule.versionHolder"

_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")


class IdentityError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class StudyIdentity:
    nct_id: str
    content_hash: str
    last_update_post_date: dt.date | None
    version_holder: dt.date | None


def get_path(record: dict, dotted: str):
    """The value at a dotted JSON path, or None where any step is missing or not an object."""
    node = record
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def parse_partial_date(value: object) -> dt.date | None:
    """ClinicalTrials.gov dates are `YYYY`, `YYYY-MM` or `YYYY-MM-DD`; order them by their first day."""
    if not isinstance(value, str):
        return None
    m = _PARTIAL_DATE.match(value.strip())
    if not m:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
    except ValueError:
        return None


def content_hash(record: dict) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace) without volatile fields."""
    stripped = record
    for path in VOLATILE_FIELDS:
        stripped = _without(stripped, path)
    try:  # orjson: ~10x faster than the json module, and the hash is on the hot path of every record
        canonical = orjson.dumps(stripped, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # e.g. an integer beyond 64 bits
        canonical = json.dumps(stripped, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()


def _without(node: dict, path: tuple[str, ...]) -> dict:
    """Copy only the dicts along `path`, so hashing never mutates the caller's record."""
    if not isinstance(node, dict) or path[0] not in node:
        return node
    if len(path) == 1:
        return {k: v for k, v in node.items() if k != path[0]}
    copy = dict(node)
    copy[path[0]] = _without(node[path[0]], path[1:])
    return copy


def identify(record: dict) -> StudyIdentity:
    nct_id = get_path(record, NCT_ID_FIELD)
    if nct_id is None:
        raise IdentityError(NCT_ID_FIELD, f"missing {NCT_ID_FIELD}: the record cannot be keyed")
    if not isinstance(nct_id, str) or not nct_id.strip():
        raise IdentityError(NCT_ID_FIELD, f"{NCT_ID_FIELD} is {nct_id!r}, not a non-empty string")
    return StudyIdentity(
        nct_id=nct_id.strip(),
        content_hash=content_hash(record),
        last_update_post_date=_ordering_date(record, LAST_UPDATE_FIELD),
        version_holder=_ordering_date(record, VERSION_HOLDER_FIELD),
    )


def _ordering_date(record: dict, field: str) -> dt.date | None:
    """A date that orders a study's versions: None when the record has none (field-projected records),
    an IdentityError when it has one that is not a date. Stored as None, such a version ranked below
    every dated version of its study, so it was never staged nor checked, and never quarantined."""
    value = get_path(record, field)
    parsed = parse_partial_date(value)
    if parsed is None and value is not None:
        raise IdentityError(field, f"{field} is {value!r}, not a date (YYYY, YYYY-MM or YYYY-MM-DD): this version "
                                   "cannot be placed among its study's versions")
    return parsed
