"""Pseudonymous FHIR R5 Patient for a trial participant (site data, never the registry).

Nothing identifying leaves the site data: no name, no USUBJID/SUBJID, no site-assigned number.
The id is ``pt-`` + the participant's pseudonym (HMAC-SHA256 of USUBJID under a key the warehouse
never stores; transforms.omop.participants.pseudonym), the same value OMOP keeps in
person.person_source_value, so the two views of one participant join without revealing who it is.
birthDate is exactly as precise as the site sent BRTHDTC (year, year-month or full date); when the
site sent only AGE there is no birthDate rather than an invented one. A participant who died
(transforms/sites/death.py: DM DTHFL/DTHDTC, DS DEATH, a fatal AE) is ``deceasedDateTime`` at the
precision of the date, down to the day: SDTM times carry no offset, which FHIR requires of a time.
"""
from __future__ import annotations

import re

from transforms.omop.participants.pseudonym import pseudonym
from transforms.sites.death import Death

_GENDER = {"M": "male", "F": "female", "U": "unknown", "UNDIFFERENTIATED": "other"}
_FHIR_DATE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")


def patient_id(usubjid: str, pseudonym_key: bytes) -> str:
    return "pt-" + pseudonym(usubjid, pseudonym_key)


def map_patient(dm: dict, pseudonym_key: bytes, death: Death | None = None) -> dict:
    """One DM record (SDTM variables as text), and the participant's death if any -> Patient."""
    res: dict = {"resourceType": "Patient", "id": patient_id(dm["USUBJID"], pseudonym_key)}
    gender = _GENDER.get((dm.get("SEX") or "").upper())
    if gender:
        res["gender"] = gender
    birth = (dm.get("BRTHDTC") or "").strip()[:10]
    if _FHIR_DATE.match(birth):
        res["birthDate"] = birth
    if death is not None:
        day = (death.dtc or "")[:10]
        if _FHIR_DATE.match(day):
            res["deceasedDateTime"] = day
        else:  # said to have died, no date (the gate holds such a participant): still not alive
            res["deceasedBoolean"] = True
    return res
