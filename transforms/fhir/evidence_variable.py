"""Interventions as EvidenceVariable resources.

R5 allows only EvidenceVariable as the target of ResearchStudy.comparisonGroup.intendedExposure
(PlanDefinition is reachable only through `protocol`, which has no per-arm link), and HL7's ctgov
example models interventions the same way. Like that example, the registry's intervention type
is kept in `useContext` (code `interventionType`) with the raw enum as text. Ids hash the
intervention's type and name inside the study, so they survive re-ordering between versions.
"""

from __future__ import annotations

from . import vocab
from .context import StudyContext
from .ids import digest

_PATH = "protocolSection.armsInterventionsModule.interventions"


def interventions(ctx: StudyContext) -> dict[str, dict]:
    """Create one EvidenceVariable per intervention; returns lookup keys -> reference.

    Arms name interventions as 'Type: Name' (interventionNames) and interventions name arms by
    label (armGroupLabels); both keys are returned so the arm mapper can use either direction.
    """
    by_key: dict[str, dict] = {}
    for i, item in enumerate(ctx.module("armsInterventionsModule").get("interventions") or []):
        path = f"{_PATH}[{i}]"
        name = (item.get("name") or "").strip()
        if not name:
            continue
        itype = item.get("type")
        type_label = vocab.lookup(vocab.INTERVENTION_TYPE, itype, f"{path}.type") if itype else None
        display = f"{type_label}: {name}" if type_label else name
        rid = ctx.ids.take(f"{ctx.rs_id}-int-{digest(itype or '', name, length=12)}")
        ev: dict = {"resourceType": "EvidenceVariable", "id": rid, "status": "active", "title": name}
        if item.get("description"):
            ev["description"] = item["description"]
        if itype:
            ev["useContext"] = [{
                "code": {"system": vocab.CTGOV_SYSTEM, "code": "interventionType",
                         "display": "Intervention Type for CT.gov"},
                "valueCodeableConcept": {"text": itype},
            }]
        if item.get("otherNames"):
            ev["note"] = [{"text": "Other names: " + "; ".join(item["otherNames"])}]
        ref = ctx.add(ev)
        ref["display"] = display
        by_key.setdefault(("name", display.casefold()), ref)
        by_key.setdefault(("name", name.casefold()), ref)
        for label in item.get("armGroupLabels") or []:
            by_key.setdefault(("arm", label.casefold(), rid), ref)
    return by_key
