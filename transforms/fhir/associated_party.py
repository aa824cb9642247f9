"""ResearchStudy.associatedParty: sponsors, collaborators, responsible party, officials, contacts.

Roles come from the research-study-party-role value set. The registry's agency class goes to
`classifier`, coded from research-study-party-organization-type where a code fits and kept as
text always, so nothing of the source is lost when no code fits (OTHER, NETWORK, INDIV...).
"""

from __future__ import annotations

from . import vocab
from .context import StudyContext
from .organization import organization
from .practitioner import practitioner, practitioner_role

_SCM = "protocolSection.sponsorCollaboratorsModule"
_CLM = "protocolSection.contactsLocationsModule"


def _role(code: str) -> dict:
    return {"coding": [vocab.coding(vocab.PARTY_ROLE_SYSTEM, code)]}


def _agency_classifier(agency_class, path: str) -> list[dict]:
    if agency_class is None:
        return []
    code = vocab.lookup(vocab.AGENCY_CLASS, agency_class, path)
    return [vocab.concept(vocab.ORG_TYPE_SYSTEM, code, agency_class)]


def _org_party(ctx: StudyContext, org: dict, role: str, path: str) -> dict | None:
    ref = organization(ctx, org.get("name"))
    if ref is None:
        return None
    party = {"name": org["name"].strip(), "role": _role(role), "party": ref}
    classifier = _agency_classifier(org.get("class"), f"{path}.class")
    if classifier:
        party["classifier"] = classifier
    return party


def associated_parties(ctx: StudyContext) -> list[dict]:
    parties: list[dict] = []
    scm = ctx.module("sponsorCollaboratorsModule")

    lead = scm.get("leadSponsor") or {}
    lead_party = _org_party(ctx, lead, "lead-sponsor", f"{_SCM}.leadSponsor")
    if lead_party:
        parties.append(lead_party)
    for i, collab in enumerate(scm.get("collaborators") or []):
        p = _org_party(ctx, collab, "collaborator", f"{_SCM}.collaborators[{i}]")
        if p:
            parties.append(p)

    clm = ctx.module("contactsLocationsModule")
    by_person: dict[str, dict] = {}
    for i, off in enumerate(clm.get("overallOfficials") or []):
        path = f"{_CLM}.overallOfficials[{i}]"
        if not off.get("name"):
            continue
        role = vocab.lookup(vocab.OFFICIAL_ROLE, off.get("role"), f"{path}.role") if off.get("role") else None
        person = practitioner(ctx, off["name"])
        org_ref = organization(ctx, off.get("affiliation"))
        role_ref = practitioner_role(ctx, person, org_ref, off.get("role"))
        party = {"name": off["name"], "role": _role(role) if role else {"text": "Overall official"},
                 "party": role_ref}
        by_person.setdefault(person["reference"], party)
        parties.append(party)

    rp = scm.get("responsibleParty") or {}
    rp_type = rp.get("type")
    if rp_type is not None:
        vocab.check(vocab.RESPONSIBLE_PARTY, rp_type, f"{_SCM}.responsibleParty.type")
    responsible = {"text": f"Responsible party ({rp_type})"} if rp_type else None
    if rp_type == "SPONSOR" and lead_party:
        lead_party.setdefault("classifier", []).append(responsible)
    elif rp.get("investigatorFullName"):
        name = rp["investigatorFullName"]
        person = practitioner(ctx, name)
        known = by_person.get(person["reference"])
        if known is not None and rp_type == "PRINCIPAL_INVESTIGATOR":
            # Same person already listed as an official: mark that entry rather than repeat it.
            known.setdefault("classifier", []).append(responsible)
        else:
            org_ref = organization(ctx, rp.get("investigatorAffiliation"))
            role_ref = practitioner_role(ctx, person, org_ref, rp.get("investigatorTitle"))
            role = "sponsor-investigator" if rp_type == "SPONSOR_INVESTIGATOR" else "primary-investigator"
            party = {"name": name, "role": _role(role), "party": role_ref}
            if responsible:
                party["classifier"] = [responsible]
            parties.append(party)

    for i, contact in enumerate(clm.get("centralContacts") or []):
        if not contact.get("name"):
            continue
        person = practitioner(ctx, contact["name"], contact.get("phone"), contact.get("phoneExt"),
                              contact.get("email"))
        parties.append({"name": contact["name"], "role": _role("recruitment-contact"), "party": person})
    return parties
