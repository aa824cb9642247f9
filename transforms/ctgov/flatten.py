"""Registry records → flat frames the registry expectation suite runs on.

One row per study for single-valued fields, and long frames for repeated ones (phases, sites,
arms, interventions), each row keeping the study's key and the JSON path of its field so a
failed expectation can name the record and the field.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable

import pandas as pd

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
    read once, so a generator can parse records as they are flattened."""
    study, phase, site, arm, intervention, section, arm_ref = [], [], [], [], [], [], []
    for row in rows:
        rec = row["record"]
        key = {k: row[k] for k in KEYS}
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
        for i, ph in enumerate(get_path(rec, f"{P}.designModule.phases") or []):
            phase.append({**key, "phase": _as_text(ph), "field": f"{P}.designModule.phases[{i}]"})
        for i, loc in enumerate(get_path(rec, f"{P}.contactsLocationsModule.locations") or []):
            geo = loc.get("geoPoint") or {}
            site.append({**key, "field": f"{P}.contactsLocationsModule.locations[{i}]",
                         "facility": _as_text(loc.get("facility")), "status": _as_text(loc.get("status")),
                         "latitude": _as_number(geo.get("lat")), "longitude": _as_number(geo.get("lon"))})
        for i, a in enumerate(get_path(rec, f"{P}.armsInterventionsModule.armGroups") or []):
            arm.append({**key, "field": f"{P}.armsInterventionsModule.armGroups[{i}]", "label": _as_text(a.get("label")),
                        "type": _as_text(a.get("type"))})
            for j, name in enumerate(a.get("interventionNames") or []):
                arm_ref.append({**key, "field": f"{P}.armsInterventionsModule.armGroups[{i}].interventionNames[{j}]",
                                "name": _as_text(name), "ref": intervention_ref(row["nct_id"], name)})
        for i, it in enumerate(get_path(rec, f"{P}.armsInterventionsModule.interventions") or []):
            intervention.append({**key, "field": f"{P}.armsInterventionsModule.interventions[{i}]",
                                 "name": _as_text(it.get("name")), "type": _as_text(it.get("type")),
                                 "ref": intervention_ref(row["nct_id"], f"{(it.get('type') or '').replace('_', ' ')}: "
                                                                        f"{it.get('name') or ''}")})
    frames = {"study": study, "phase": phase, "site": site, "arm": arm, "intervention": intervention,
              "section": section, "arm_intervention": arm_ref}
    return {name: pd.DataFrame(data, columns=_columns(name)) for name, data in frames.items()}


def _columns(name: str) -> list[str]:
    extra = {
        "study": [f"has_{m}" for m in REQUIRED_MODULES] + list(STUDY_FIELDS) + [f"{c}_day" for c in POSTED_DATES],
        "phase": ["phase", "field"],
        "site": ["field", "facility", "status", "latitude", "longitude"],
        "arm": ["field", "label", "type"],
        "intervention": ["field", "name", "type", "ref"],
        "section": ["section", "field"],
        "arm_intervention": ["field", "name", "ref"],
    }[name]
    return KEYS + extra
