"""Primary, secondary and other outcome measures as ResearchStudy.outcomeMeasure.

R5 outcomeMeasure has no time-frame element, so the registry's time frame is appended to the
description ('Time frame: ...'), where a reader of the resource will find it. 'Other'
outcomes map to `exploratory`, the research-study-objective-type code for them.
"""

from __future__ import annotations

from . import vocab
from .context import StudyContext

_KINDS = (("primaryOutcomes", "primary"), ("secondaryOutcomes", "secondary"), ("otherOutcomes", "exploratory"))


def outcome_measures(ctx: StudyContext) -> list[dict]:
    out: list[dict] = []
    om = ctx.module("outcomesModule")
    for key, code in _KINDS:
        for item in om.get(key) or []:
            measure = (item.get("measure") or "").strip()
            if not measure:
                continue
            entry: dict = {"name": measure, "type": [vocab.concept(vocab.OBJECTIVE_SYSTEM, code)]}
            text = [t for t in (item.get("description"), f"Time frame: {item['timeFrame']}" if item.get("timeFrame") else None) if t]
            if text:
                entry["description"] = "\n\n".join(text)
            out.append(entry)
    return out
