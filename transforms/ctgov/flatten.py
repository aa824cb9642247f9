"""Registry records → flat frames the registry expectation suite runs on.

One row per study for single-valued fields, and long frames for repeated ones (phases, sites,
arms, interventions), each row keeping the study's key and the JSON path of its field so a
failed expectation can name the record and the field.
"""
from __future__ import annotations

import json

import datetime as dt
from functools import cache
from typing import Iterable

import jsonschema_rs
import pandas as pd

from schemas.ctgov.contract import record_schema
from transforms.ctgov.identity import get_path

P = "protocolSection"

STUDY_FIELDS: dict[str, str] = {
    "brief_title": f"{P}.identificationModule.briefTitle",
    "overall_status": f"{P}.statusModule.overallStatus",
    "study_type": f"{P}.designModule.studyType",
    "allocation": f"{P}.designModule.designInfo.allocation",
    "intervention_model": f"{P}.designModule.designInfo.interventionModel",
    "primary_purpose": f"{P}.designModule.designInfo.primaryPurpose",
    "observational_model": f"{P}.designModule.designInfo.observationalModel",
    "time_perspective": f"{P}.designModule.designInfo.timePerspective",
    "masking": f"{P}.designModule.designInfo.maskingInfo.masking",
    "enrollment_count": f"{P}.designModule.enrollmentInfo.count",
    "enrollment_type": f"{P}.designModule.enrollmentInfo.type",
    "sex": f"{P}.eligibilityModule.sex",
    "start_date": f"{P}.statusModule.startDateStruct.date",
    "start_date_type": f"{P}.statusModule.startDateStruct.type",
    "primary_completion_date": f"{P}.statusModule.primaryCompletionDateStruct.date",
    "primary_completion_date_type": f"{P}.statusModule.primaryCompletionDateStruct.type",
    "completion_date": f"{P}.statusModule.completionDateStruct.date",
    "completion_date_type": f"{P}.statusModule.completionDateStruct.type",
    "study_first_submit_date": f"{P}.statusModule.studyFirstSubmitDate",
    "last_update_post_date": f"{P}.statusModule.lastUpdatePostDateStruct.date",
}

# Dates the registry stamps when something is posted, so none can lie ahead of the run (start and
# completion dates can: they are anticipated).
POSTED_DATES = ("study_first_submit_date", "last_update_post_date")
# Modules every registration record carries; field-projected API pages lack some and are held.
REQUIRED_MODULES = ("identificationModule", "statusModule", "sponsorCollaboratorsModule", "designModule")

KEYS = ["version_key", "nct_id", "source_file", "source_record"]


def _as_text(value):
    # Enum and date columns are compared as text; a number where text belongs still shows up.
    return None if value is None else str(value)


def _as_number(value):
    if value is None or isinstance(value, bool):
        return None if value is None else float("nan")
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _first_day(value: str | None) -> dt.date | None:
    """A registry date (YYYY, YYYY-MM or YYYY-MM-DD) as the first day it can mean; None when it is not
    one (the date rules name it). Python dates, not pandas': those end in 2262, so a year 9999 passed."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value + {4: "-01-01", 7: "-01"}.get(len(value), ""))
    except ValueError:
        return None


def intervention_ref(nct_id: str, name) -> str:
    """How an arm names an intervention: '<Type>: <name>' (e.g. 'Drug: Ketamine'), compared caseless."""
    return f"{nct_id}|{str(name).strip().casefold()}"


def registry_frames(rows: Iterable[dict]) -> dict[str, pd.DataFrame]:
    """`rows`: dicts with version_key, nct_id, source_file, source_record and `record` (the study),
    read once, so a generator can parse records as they are flattened.

    A repeated element of the wrong JSON type (`locations` a string, a site a string, `geoPoint` a
    list) goes to the `shape` frame with its path, for the suite to hold the record; nothing of it is
    flattened. A record whose flattening fails anyway is held the same way, at `$`: one odd record
    never stops the batch."""
    study, phase, site, arm, intervention, section, arm_ref, shape = [], [], [], [], [], [], [], []
    for row in rows:
        rec = row["record"]
        key = {k: row[k] for k in KEYS}
        out = ([], [], [], [], [], [], [], [])
        try:
            _flatten(rec, row["nct_id"], key, *out)
        except Exception as exc:  # noqa: BLE001 - held with its reason below, never raised
            out = ([], [], [], [], [], [], [], [{**key, "field": "$", "found": f"{type(exc).__name__}: {exc}"}])
        for frame, part in zip((study, phase, site, arm, intervention, section, arm_ref, shape), out):
            frame += part
    frames = {"study": study, "phase": phase, "site": site, "arm": arm, "intervention": intervention,
              "section": section, "arm_intervention": arm_ref, "shape": shape}
    return {name: pd.DataFrame(data, columns=_columns(name)) for name, data in frames.items()}


def _items(rec: dict, path: str, shape: list, key: dict, objects: bool = True) -> list[tuple[int, object]]:
    """(index, element) of the array at `path` (none when absent); a value that is not an array, or
    (with `objects`) an element that is not an object, is recorded in `shape` instead."""
    value = get_path(rec, path)
    if value is None:
        return []
    if not isinstance(value, list):
        shape.append({**key, "field": path, "found": f"{_found(value)}, not an array"})
        return []
    out = []
    for i, v in enumerate(value):
        if objects and not isinstance(v, dict):
            shape.append({**key, "field": f"{path}[{i}]", "found": f"{_found(v)}, not an object"})
        else:
            out.append((i, v))
    return out


def _found(value) -> str:
    """What a field of the wrong JSON type holds, for the hold's reason: its type, and the value itself
    when it is a scalar (the reason said `'string, not an array'`, not which string)."""
    if isinstance(value, (dict, list)) or value is None:
        return _json_type(value)
    text = json.dumps(value, ensure_ascii=False)
    return f"{_json_type(value)} {text if len(text) <= 60 else text[:57] + '...'}"


def _json_type(value) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", str: "string", int: "number", float: "number", dict: "object", list: "array"}.get(
        type(value), type(value).__name__)


def _flatten(rec: dict, nct_id: str, key: dict, study, phase, site, arm, intervention, section, arm_ref, shape) -> None:
    protocol = rec.get(P) if isinstance(rec.get(P), dict) else {}
    s = dict(key)
    for module in REQUIRED_MODULES:
        s[f"has_{module}"] = isinstance(protocol.get(module), dict)
    for col, path in STUDY_FIELDS.items():
        value = get_path(rec, path)
        s[col] = _as_number(value) if col == "enrollment_count" else _as_text(value)
    for col in POSTED_DATES:
        s[f"{col}_day"] = _first_day(s[col])
    study.append(s)
    for name in rec:
        section.append({**key, "section": name, "field": name})
    for name in protocol:
        section.append({**key, "section": f"{P}.{name}", "field": f"{P}.{name}"})
    for i, ph in _items(rec, f"{P}.designModule.phases", shape, key, objects=False):
        phase.append({**key, "phase": _as_text(ph), "field": f"{P}.designModule.phases[{i}]"})
    sites = f"{P}.contactsLocationsModule.locations"
    for i, loc in _items(rec, sites, shape, key):
        geo = loc.get("geoPoint")
        if geo is not None and not isinstance(geo, dict):
            shape.append({**key, "field": f"{sites}[{i}].geoPoint", "found": f"{_json_type(geo)}, not an object"})
            continue
        geo = geo or {}
        site.append({**key, "field": f"{sites}[{i}]",
                     "facility": _as_text(loc.get("facility")), "status": _as_text(loc.get("status")),
                     "latitude": _as_number(geo.get("lat")), "longitude": _as_number(geo.get("lon"))})
    arms = f"{P}.armsInterventionsModule.armGroups"
    for i, a in _items(rec, arms, shape, key):
        arm.append({**key, "field": f"{arms}[{i}]", "label": _as_text(a.get("label")), "type": _as_text(a.get("type"))})
        names = a.get("interventionNames")
        if names is not None and not isinstance(names, list):
            shape.append({**key, "field": f"{arms}[{i}].interventionNames", "found": f"{_json_type(names)}, not an array"})
            continue
        for j, name in enumerate(names or []):
            arm_ref.append({**key, "field": f"{arms}[{i}].interventionNames[{j}]",
                            "name": _as_text(name), "ref": intervention_ref(nct_id, name)})
    interventions = f"{P}.armsInterventionsModule.interventions"
    for i, it in _items(rec, interventions, shape, key):
        intervention.append({**key, "field": f"{interventions}[{i}]",
                             "name": _as_text(it.get("name")), "type": _as_text(it.get("type")),
                             "ref": intervention_ref(nct_id, f"{(it.get('type') or '').replace('_', ' ')}: "
                                                             f"{it.get('name') or ''}")})
    _contract_shape(rec, key, shape)


@cache
def _contract() -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for(record_schema())


_A = {"array": "an array", "object": "an object", "string": "a string", "number": "a number",
      "integer": "an integer", "boolean": "a boolean"}


def _contract_shape(rec: dict, key: dict, shape: list) -> None:
    """Every field of another JSON type than the registry contract's (schemas/ctgov: record_schema) goes
    to `shape`, once (the checks above name the repeated elements they flatten). One compiled check a
    record, ~15 us; the errors are walked only for a record that fails it."""
    if _contract().is_valid(rec):
        return
    named = {row["field"] for row in shape}  # this record's: each is flattened into lists of its own
    for error in _contract().iter_errors(rec):
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.instance_path).lstrip(".")
        if field in named:
            continue
        named.add(field)
        expected = [t for t in getattr(error.kind, "types", ()) if t != "null"]
        shape.append({**key, "field": field or "$", "found": f"{_found(error.instance)}, not "
                      + (" or ".join(_A.get(t, t) for t in expected) or "what the registry contract says")})


def _columns(name: str) -> list[str]:
    extra = {
        "study": [f"has_{m}" for m in REQUIRED_MODULES] + list(STUDY_FIELDS) + [f"{c}_day" for c in POSTED_DATES],
        "phase": ["phase", "field"],
        "site": ["field", "facility", "status", "latitude", "longitude"],
        "arm": ["field", "label", "type"],
        "intervention": ["field", "name", "type", "ref"],
        "section": ["section", "field"],
        "arm_intervention": ["field", "name", "ref"],
        "shape": ["field", "found"],
    }[name]
    return KEYS + extra
