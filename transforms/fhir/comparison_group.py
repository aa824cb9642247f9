"""Arms and groups/cohorts as ResearchStudy.comparisonGroup.

`linkId` is a slug of the arm label, unique within the study, so other resources can point at
an arm across versions. Observational cohorts carry no arm type and get no `type`.
An arm's interventions are linked both ways the registry records them (the arm's
interventionNames and each intervention's armGroupLabels), since records often fill only one.
"""

from __future__ import annotations

from . import vocab
from .context import StudyContext
from .ids import IdAllocator, slug

_PATH = "protocolSection.armsInterventionsModule.armGroups"


def comparison_groups(ctx: StudyContext, interventions: dict) -> list[dict]:
    groups: list[dict] = []
    link_ids = IdAllocator()
    for i, arm in enumerate(ctx.module("armsInterventionsModule").get("armGroups") or []):
        path = f"{_PATH}[{i}]"
        label = (arm.get("label") or "").strip()
        if not label:
            continue
        group: dict = {"linkId": link_ids.take(slug(label) or f"arm-{i + 1}"), "name": label}
        if arm.get("type"):
            code = vocab.lookup(vocab.ARM_TYPE, arm["type"], f"{path}.type")
            group["type"] = vocab.concept(vocab.ARM_TYPE_SYSTEM, code, arm["type"])
        if arm.get("description"):
            group["description"] = arm["description"]
        exposures: dict[str, dict] = {}
        for n in arm.get("interventionNames") or []:
            ref = interventions.get(("name", n.strip().casefold()))
            if ref:
                exposures.setdefault(ref["reference"], ref)
        for key, ref in interventions.items():
            if key[0] == "arm" and key[1] == label.casefold():
                exposures.setdefault(ref["reference"], ref)
        if exposures:
            group["intendedExposure"] = [dict(r) for r in exposures.values()]
        groups.append(group)
    return groups
