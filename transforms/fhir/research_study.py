"""The study itself: a ClinicalTrials.gov API v2 record -> R5 ResearchStudy plus the resources
it references (Organization, Practitioner, PractitionerRole, Location, per-site ResearchStudy,
Group, EvidenceVariable).

Follows the `clinicaltrials-gov` mapping column of the R5 ResearchStudy definition and HL7's
ctgov example; where we depart from the example (code systems, per-site studies standalone
rather than contained) the owning module says why. Every element is optional in the source
(field-projected API pages carry a handful of fields), so each mapper maps what is present.
"""

from __future__ import annotations

import re

from . import vocab
from .associated_party import associated_parties
from .comparison_group import comparison_groups
from .context import StudyContext
from .errors import MappingError
from .evidence_variable import interventions
from .group import eligibility_group
from .location import sites
from .outcome_measure import outcome_measures
from .related_artifact import related_artifacts

_NCT_RE = re.compile(r"^NCT\d{8}$")
_IDM = "protocolSection.identificationModule"
_STM = "protocolSection.statusModule"
_DSM = "protocolSection.designModule"
# Without an enrolment type, a count on a study that has stopped recruiting is an actual count.
_CLOSED = {"COMPLETED", "TERMINATED", "ACTIVE_NOT_RECRUITING", "WITHDRAWN"}


def nct_id_of(record) -> str:
    if not isinstance(record, dict):
        raise MappingError("$", f"expected a study object, got {type(record).__name__}")
    nct = ((record.get("protocolSection") or {}).get("identificationModule") or {}).get("nctId")
    if not nct:
        raise MappingError(f"{_IDM}.nctId", "missing")
    if not isinstance(nct, str) or not _NCT_RE.match(nct):
        raise MappingError(f"{_IDM}.nctId", f"not an NCT number: {nct!r}")
    return nct


def _identifiers(ctx: StudyContext) -> list[dict]:
    idm = ctx.module("identificationModule")
    out = [{"use": "official", "system": vocab.CTGOV_SYSTEM, "value": ctx.nct_id}]
    for alias in idm.get("nctIdAliases") or []:
        out.append({"use": "old", "system": vocab.CTGOV_SYSTEM, "value": alias})
    org_name = (idm.get("organization") or {}).get("fullName")
    org_id = (idm.get("orgStudyIdInfo") or {}).get("id")
    if org_id:
        ident = {"use": "secondary", "type": {"text": "Organization's Unique Protocol ID"}, "value": org_id}
        if org_name:
            ident["assigner"] = {"display": org_name}
        out.append(ident)
    for sec in idm.get("secondaryIdInfos") or []:
        if not sec.get("id"):
            continue
        ident = {"use": "secondary", "type": {"text": sec.get("type") or "Secondary ID"}, "value": sec["id"]}
        if sec.get("domain"):
            ident["assigner"] = {"display": sec["domain"]}
        out.append(ident)
    return out


def _labels(idm: dict) -> list[dict]:
    out = []
    for key, code in (("officialTitle", "official"), ("acronym", "acronym")):
        if idm.get(key):
            out.append({"type": vocab.concept(vocab.TITLE_TYPE_SYSTEM, code), "value": idm[key]})
    return out


def _date(ctx: StudyContext, key: str) -> tuple[str | None, bool | None]:
    struct = ctx.module("statusModule").get(key) or {}
    dtype = struct.get("type")
    if dtype is not None:
        vocab.check(vocab.DATE_TYPE, dtype, f"{_STM}.{key}.type")
    return struct.get("date"), (dtype == "ACTUAL") if dtype else None


def _progress(ctx: StudyContext, status: str | None) -> list[dict]:
    out: list[dict] = []
    if status:
        code = vocab.lookup(vocab.STATUS, status, f"{_STM}.overallStatus")
        text = status
        last_known = ctx.module("statusModule").get("lastKnownStatus")
        if status == "UNKNOWN" and last_known:
            text = f"UNKNOWN (last known: {last_known})"
        out.append({"state": vocab.concept(vocab.STATUS_SYSTEM, code, text)})
    overall = vocab.concept(vocab.STATUS_SYSTEM, "overall-study")
    (start, start_actual), (end, end_actual) = _date(ctx, "startDateStruct"), _date(ctx, "completionDateStruct")
    if start or end:
        # One entry when both dates share their ACTUAL/ESTIMATED kind, else one entry per date.
        if start and end and start_actual == end_actual:
            entries = [(start_actual, {"start": start, "end": end})]
        else:
            entries = [(a, {k: d}) for a, k, d in ((start_actual, "start", start), (end_actual, "end", end)) if d]
        for actual, period in entries:
            e: dict = {"state": overall}
            if actual is not None:
                e["actual"] = actual
            e["period"] = period
            out.append(e)
    pc, pc_actual = _date(ctx, "primaryCompletionDateStruct")
    if pc:
        e = {"state": {"text": "Primary completion"}, "period": {"end": pc}}
        if pc_actual is not None:
            e["actual"] = pc_actual
        out.append(e)
    return out


def _phase(dm: dict) -> dict | None:
    phases = dm.get("phases")
    if not phases:
        return None
    for i, p in enumerate(phases):
        vocab.check(vocab.KNOWN_PHASES, p, f"{_DSM}.phases[{i}]")
    code = vocab.lookup(vocab.PHASES, tuple(sorted(set(phases))), f"{_DSM}.phases")
    return vocab.concept(vocab.PHASE_SYSTEM, code, "+".join(phases))


def _design_item(table: dict, value, path: str, label: str) -> dict:
    display, code = vocab.lookup(table, value, path)
    return vocab.concept(vocab.STUDY_DESIGN_SYSTEM if code else None, code, f"{label}: {display}")


def _study_design(dm: dict) -> list[dict]:
    out = []
    if dm.get("studyType"):
        out.append(_design_item(vocab.STUDY_TYPE, dm["studyType"], f"{_DSM}.studyType", "Study Type"))
    di = dm.get("designInfo") or {}
    p = f"{_DSM}.designInfo"
    for key, table, label in (("allocation", vocab.ALLOCATION, "Allocation"),
                              ("interventionModel", vocab.INTERVENTION_MODEL, "Intervention Model"),
                              ("observationalModel", vocab.OBSERVATIONAL_MODEL, "Observational Model"),
                              ("timePerspective", vocab.TIME_PERSPECTIVE, "Time Perspective")):
        if di.get(key):
            out.append(_design_item(table, di[key], f"{p}.{key}", label))
    mi = di.get("maskingInfo") or {}
    if mi.get("masking"):
        out.append(_design_item(vocab.MASKING, mi["masking"], f"{p}.maskingInfo.masking", "Masking"))
    for i, who in enumerate(mi.get("whoMasked") or []):
        out.append(_design_item(vocab.WHO_MASKED, who, f"{p}.maskingInfo.whoMasked[{i}]", "Masked"))
    bio = dm.get("bioSpec") or {}
    if bio.get("retention"):
        out.append({"text": f"Biospecimen Retention: {bio['retention']}"})
    if dm.get("patientRegistry") is True:
        out.append({"text": "Patient Registry"})
    return out


def _conditions(ctx: StudyContext) -> list[dict]:
    out = [{"text": c} for c in ctx.module("conditionsModule").get("conditions") or [] if c]
    for m in (ctx.derived.get("conditionBrowseModule") or {}).get("meshes") or []:
        if m.get("id"):
            out.append(vocab.concept(vocab.MESH_SYSTEM, m["id"], m.get("term"), m.get("term")))
    return out


def _focus(ctx: StudyContext) -> list[dict]:
    return [{"concept": vocab.concept(vocab.MESH_SYSTEM, m["id"], m.get("term"), m.get("term"))}
            for m in (ctx.derived.get("interventionBrowseModule") or {}).get("meshes") or [] if m.get("id")]


def _classifiers(ctx: StudyContext) -> list[dict]:
    out = []
    om = ctx.module("oversightModule")
    for key, code, label in (("isFdaRegulatedDrug", "fda-regulated-drug", "FDA regulated drug"),
                             ("isFdaRegulatedDevice", "fda-regulated-device", "FDA regulated device")):
        if om.get(key) is True:
            out.append(vocab.concept(vocab.CLASSIFIER_SYSTEM, code, f"{label}: Yes"))
        elif om.get(key) is False:
            out.append({"text": f"{label}: No"})
    if isinstance(om.get("oversightHasDmc"), bool):
        out.append({"text": f"Has data monitoring committee: {'Yes' if om['oversightHasDmc'] else 'No'}"})
    if isinstance(ctx.record.get("hasResults"), bool):
        out.append({"text": f"Has Results: {'Yes' if ctx.record['hasResults'] else 'No'}"})
    return out


def _recruitment(ctx: StudyContext, eligibility: dict | None) -> dict | None:
    rec: dict = {}
    info = ctx.module("designModule").get("enrollmentInfo") or {}
    count = info.get("count")
    if count is not None:
        if not isinstance(count, int) or count < 0:
            raise MappingError(f"{_DSM}.enrollmentInfo.count", f"not a non-negative integer: {count!r}")
        etype = info.get("type")
        if etype is not None:
            vocab.check(vocab.ENROLLMENT_TYPE, etype, f"{_DSM}.enrollmentInfo.type")
        actual = etype == "ACTUAL" if etype else ctx.module("statusModule").get("overallStatus") in _CLOSED
        rec["actualNumber" if actual else "targetNumber"] = count
    if eligibility:
        rec["eligibility"] = eligibility
    return rec or None


def _purpose(dm: dict) -> dict | None:
    purpose = (dm.get("designInfo") or {}).get("primaryPurpose")
    if not purpose:
        return None
    code = vocab.lookup(vocab.PURPOSE, purpose, f"{_DSM}.designInfo.primaryPurpose")
    return vocab.concept(vocab.PURPOSE_SYSTEM, code, purpose)


def research_study(ctx: StudyContext) -> dict:
    """Build the ResearchStudy; referenced resources are registered on `ctx` as a side effect.

    `status` is the publication status of the resource, not of the study: a registry record is
    always an active publication; the study's own status is `progressStatus`.
    """
    idm, dm, stm = ctx.module("identificationModule"), ctx.module("designModule"), ctx.module("statusModule")
    desc = ctx.module("descriptionModule")
    site_refs, regions = sites(ctx)
    start, _ = _date(ctx, "startDateStruct")
    end, _ = _date(ctx, "completionDateStruct")
    elements = {  # R5 element order; empty ones are left out
        "identifier": _identifiers(ctx),
        "name": ctx.nct_id,
        "title": idm.get("briefTitle"),
        "label": _labels(idm),
        "relatedArtifact": related_artifacts(ctx),
        "status": "active",
        "primaryPurposeType": _purpose(dm),
        "phase": _phase(dm),
        "studyDesign": _study_design(dm),
        "focus": _focus(ctx),
        "condition": _conditions(ctx),
        "keyword": [{"text": k} for k in ctx.module("conditionsModule").get("keywords") or [] if k],
        "region": regions,
        "descriptionSummary": desc.get("briefSummary"),
        "description": desc.get("detailedDescription"),
        "period": {k: v for k, v in (("start", start), ("end", end)) if v},
        "site": site_refs,
        "classifier": _classifiers(ctx),
        "associatedParty": associated_parties(ctx),
        "progressStatus": _progress(ctx, stm.get("overallStatus")),
        "whyStopped": {"text": stm["whyStopped"]} if stm.get("whyStopped") else None,
        "recruitment": _recruitment(ctx, eligibility_group(ctx)),
        "comparisonGroup": comparison_groups(ctx, interventions(ctx)),
        "outcomeMeasure": outcome_measures(ctx),
    }
    rs: dict = {"resourceType": "ResearchStudy", "id": ctx.rs_id, "meta": dict(ctx.meta)}
    rs.update({k: v for k, v in elements.items() if v})
    return rs


def map_study(record: dict, *, version_id: str = "1", last_updated: str | None = None) -> list[dict]:
    """Every FHIR resource of one study as plain JSON dicts, the ResearchStudy first.

    Ids are deterministic, so mapping the same record twice gives identical output; `version_id`
    and `last_updated` (a FHIR instant) go to every resource's meta and come from the caller,
    which knows when the registry published a new version of the study.
    """
    ctx = StudyContext(record, nct_id_of(record), str(version_id), last_updated)
    rs = research_study(ctx)
    return [rs, *ctx.resources()]
