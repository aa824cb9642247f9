"""Eligibility as a definitional Group (ResearchStudy.recruitment.eligibility).

The criteria prose goes to `description`; the parts a computer can use without reading prose
(age range, sex, healthy volunteers) become `characteristic`s, so a site-matching query can
filter on them. `sex: ALL` sets no restriction and adds no characteristic.
"""

from __future__ import annotations

import re

from . import vocab
from .context import StudyContext
from .errors import MappingError

_PATH = "protocolSection.eligibilityModule"
_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s+([A-Za-z]+)\s*$")
_AGE_CODE = {"coding": [vocab.coding(vocab.LOINC, "30525-0", "Age")], "text": "Age"}


def _age(value: str | None, path: str) -> dict | None:
    if not value or value.strip().upper() in ("N/A", "NA"):
        return None
    m = _AGE_RE.match(value)
    if not m:
        raise MappingError(path, f"unreadable age {value!r}")
    unit = vocab.lookup(vocab.AGE_UNITS, m.group(2).lower(), path)
    number = float(m.group(1))
    return {"value": int(number) if number.is_integer() else number, "unit": m.group(2).lower(),
            "system": vocab.UCUM, "code": unit}


def eligibility_group(ctx: StudyContext) -> dict | None:
    em = ctx.module("eligibilityModule")
    if not em:
        return None
    group: dict = {
        "resourceType": "Group",
        "id": f"{ctx.rs_id}-eligibility",
        "name": f"Eligibility criteria of {ctx.nct_id}",
        "type": "person",
        "membership": "definitional",
    }
    if em.get("eligibilityCriteria"):
        group["description"] = em["eligibilityCriteria"]
    chars: list[dict] = []
    low = _age(em.get("minimumAge"), f"{_PATH}.minimumAge")
    high = _age(em.get("maximumAge"), f"{_PATH}.maximumAge")
    if low or high:
        rng = {}
        if low:
            rng["low"] = low
        if high:
            rng["high"] = high
        chars.append({"code": _AGE_CODE, "valueRange": rng, "exclude": False})
    sex = em.get("sex")
    if sex is not None:
        code = vocab.lookup(vocab.SEX, sex, f"{_PATH}.sex")
        if code:
            chars.append({"code": {"text": "Sex"},
                          "valueCodeableConcept": vocab.concept(vocab.GENDER_SYSTEM, code, sex),
                          "exclude": False})
    if isinstance(em.get("healthyVolunteers"), bool):
        chars.append({"code": {"text": "Accepts healthy volunteers"},
                      "valueBoolean": em["healthyVolunteers"], "exclude": False})
    if chars:
        group["characteristic"] = chars
    return ctx.add(group)
