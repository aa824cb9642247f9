"""Practitioners (investigators, contacts) and their roles at an organisation.

The registry gives a person only a free-text name, so identity across studies is not reliable
(two 'J. Smith's); practitioner ids are therefore scoped to the study, while the same person
named twice within one study (as official and as responsible party, with differing degree
spellings) collapses to one resource.
"""

from __future__ import annotations

from .context import StudyContext
from .ids import digest, person_key


def _telecom(phone: str | None, ext: str | None, email: str | None) -> list[dict]:
    out = []
    if phone:
        out.append({"system": "phone", "value": f"{phone} ext. {ext}" if ext else phone})
    if email:
        out.append({"system": "email", "value": email})
    return out


def practitioner(ctx: StudyContext, name: str, phone: str | None = None, ext: str | None = None,
                 email: str | None = None) -> dict:
    rid = f"{ctx.rs_id}-pract-{digest(person_key(name), length=12)}"
    telecom = _telecom(phone, ext, email)
    known = ctx.existing("Practitioner", rid)
    if known is not None:
        # The same person named again, e.g. a central contact who is also the overall official, whose
        # entry came first without phone or email: those were dropped with the second mention.
        if telecom:
            have = known.setdefault("telecom", [])
            have.extend(t for t in telecom if t not in have)
        ref = ctx.ref("Practitioner", rid)
    else:
        res = {"resourceType": "Practitioner", "id": rid, "active": True, "name": [{"text": name.strip()}]}
        if telecom:
            res["telecom"] = telecom
        ref = ctx.add(res)
    ref["display"] = name.strip()
    return ref


def practitioner_role(ctx: StudyContext, practitioner_ref: dict, org_ref: dict | None, title: str | None) -> dict:
    """A person acting for an organisation; the reference target of associatedParty.party."""
    key = practitioner_ref["reference"] + "|" + (org_ref or {}).get("reference", "") + "|" + (title or "")
    rid = f"{ctx.rs_id}-prole-{digest(key, length=12)}"
    res: dict = {"resourceType": "PractitionerRole", "id": rid, "active": True,
                 "practitioner": {k: v for k, v in practitioner_ref.items()}}
    if org_ref:
        res["organization"] = dict(org_ref)
    if title:
        res["code"] = [{"text": title}]
    ref = ctx.add(res)
    ref["display"] = practitioner_ref.get("display")
    return ref
