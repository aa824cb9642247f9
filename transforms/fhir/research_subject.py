"""Trial participants (site SDTM data) -> pseudonymous Patient + ResearchSubject (FHIR R5).

ResearchSubject.study points at the registry's ResearchStudy (id ``nct06668571``-style, ids.study_id),
subject at the pseudonymous Patient (patient.py). Arms: assignedComparisonGroup / actualComparisonGroup
are the ``linkId`` of the ResearchStudy.comparisonGroup whose arm label DM.ARM / DM.ACTARM names; the
linkIds are allocated exactly as comparison_group.py does (slug of the label, unique in the study),
so both ends agree without reading the FHIR store.

Progress (type Enrollment, states from terminology.hl7.org research-subject-state):
  screening               from RFICDTC (informed consent)
  on-study-intervention   RFSTDTC .. RFENDTC (first to last exposure)
  follow-up               from RFENDTC, while no disposition event is recorded
  off-study               DS COMPLETED, and DS DEATH (reason DEATH: no longer followed, not withdrawn)
  ineligible              DS SCREEN FAILURE
  withdrawn               any other DS reason (reason = DSDECOD)
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import orjson

from transforms.ctgov.arm_labels import arm_lookup, find_arm
from transforms.fhir.ids import IdAllocator, slug, study_id
from transforms.fhir.patient import map_patient, patient_id
from transforms.fhir.store import PARTICIPANT_TYPES
from transforms.omop.participants.pseudonym import pseudonym
from transforms.sites.death import Death, death_of

STATE_SYSTEM = "http://terminology.hl7.org/CodeSystem/research-subject-state"
STATE_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/research-subject-state-type"
_DS_STATE = {"COMPLETED": "off-study", "DEATH": "off-study", "SCREEN FAILURE": "ineligible"}


def arm_link_ids(registry: dict | None, labels: list[str] = ()) -> dict[str, str]:
    """Arm label -> comparisonGroup.linkId, as a ``transforms.ctgov.arm_labels`` lookup (``find_arm``):
    labels whose normalised keys clash match only exactly. From the registry record when given (the
    same allocation as comparison_group.py), else the slug of each label seen in the data."""
    if registry:
        alloc = IdAllocator()
        groups = registry.get("protocolSection", {}).get("armsInterventionsModule", {}).get("armGroups") or []
        pairs = []
        for i, arm in enumerate(groups):
            label = arm.get("label") or ""
            if label.strip():
                pairs.append((label, alloc.take(slug(label) or f"arm-{i + 1}")))
        return arm_lookup(pairs)
    return arm_lookup((x, slug(x)) for x in labels if x and slug(x))


def _date(text: str | None) -> str | None:
    t = (text or "").strip()
    return t[:10] if len(t) >= 4 else None


def _state(code: str, start: str | None, end: str | None = None, reason: str | None = None) -> dict:
    p = {"type": {"coding": [{"system": STATE_TYPE_SYSTEM, "code": "Enrollment"}]},
         "subjectState": {"coding": [{"system": STATE_SYSTEM, "code": code}]}}
    if start:
        p["startDate"] = start
    if end:
        p["endDate"] = end
    if reason:
        p["reason"] = {"text": reason}
    return p


def _close_states(progress: list[dict]) -> None:
    """Each state left open ends where the next one starts. Enrollment is "a status that can only have a
    single value at a given point in time" (research-subject-state-type): a participant who completed and
    then died was off-study twice at once, and one in follow-up stayed in it after a DS row moved them on.
    A later start known only to its month or year, one that contains this state's start, leaves it open:
    which came first is not known."""
    for i, state in enumerate(progress):
        if "endDate" in state:
            continue
        later = next((p["startDate"] for p in progress[i + 1:] if p.get("startDate")), None)
        if later and later >= state.get("startDate", later):
            state["endDate"] = later


def map_research_subject(rows: dict[str, list[dict]], nct_id: str, pseudonym_key: bytes, links: dict[str, str],
                         death: Death | None = None) -> dict:
    dm = rows["DM"][0]
    consent, first, last = _date(dm.get("RFICDTC")), _date(dm.get("RFSTDTC")), _date(dm.get("RFENDTC"))
    progress = [_state("screening", consent, first)]
    if first:
        progress.append(_state("on-study-intervention", first, last))
    ds = sorted(rows.get("DS", []), key=lambda r: r.get("DSSTDTC") or "")
    if last and not ds:
        progress.append(_state("follow-up", last))
    for r in ds:
        code = _DS_STATE.get(r.get("DSDECOD") or "", "withdrawn")
        decod = r.get("DSDECOD") or ""
        progress.append(_state(code, _date(r.get("DSSTDTC")),
                               reason=decod if code == "withdrawn" or decod == "DEATH" else None))
    # A death DM or a fatal AE reports without a DS DEATH row still ends the participant's time on study:
    # the Patient says deceased, and an open follow-up would say they are still followed.
    died_on = _date(death.dtc) if death and death.dtc else None
    if death and not any((r.get("DSDECOD") or "") == "DEATH" for r in ds):
        progress.append(_state("off-study", died_on, reason="DEATH"))
    _close_states(progress)
    res = {"resourceType": "ResearchSubject", "id": "rs-" + pseudonym(dm["USUBJID"], pseudonym_key),
           "status": "active", "progress": progress,
           "study": {"reference": f"ResearchStudy/{study_id(nct_id)}"},
           "subject": {"reference": f"Patient/{patient_id(dm['USUBJID'], pseudonym_key)}"}}
    end = max((d for d in (_date(ds[-1].get("DSSTDTC")) if ds else None, died_on) if d), default=None)
    period = {k: v for k, v in (("start", consent), ("end", end)) if v}
    if period:
        res["period"] = period
    for field, var in (("assignedComparisonGroup", "ARM"), ("actualComparisonGroup", "ACTARM")):
        link = find_arm(links, dm.get(var))
        if link:
            res[field] = link
    return res


def map_participants_fhir(rows_by_subject: dict[str, dict[str, list[dict]]], nct_id: str, pseudonym_key: bytes,
                          *, registry: dict | None = None) -> list[dict]:
    """``{USUBJID: {domain: [SDTM record, ...]}}`` -> [Patient, ResearchSubject, ...], sorted by id.
    Subjects without a DM record are skipped (nothing to say who they are; the gate quarantines them).
    ``stamp_versions`` gives them their ``meta`` once the published copies can be compared."""
    labels = [r.get(v) for rows in rows_by_subject.values() for r in rows.get("DM", []) for v in ("ARM", "ACTARM")]
    links = arm_link_ids(registry, labels)
    out = []
    for usubjid in sorted(rows_by_subject):
        rows = {d.upper(): v for d, v in rows_by_subject[usubjid].items()}
        if not rows.get("DM"):
            continue
        death = death_of(rows)
        out.append(map_patient(rows["DM"][0], pseudonym_key, death))
        out.append(map_research_subject(rows, nct_id, pseudonym_key, links, death))
    return out


def stamp_versions(con, resources: list[dict], now: dt.datetime, published: str = "fhir.resource") -> None:
    """Give each participant resource its ``meta``, in place. ``versionId`` is a digest of its content, so
    it changes exactly when the content does, whatever changed it (a new delivery, a registry version its
    arms link to, a row the gate now holds); ``lastUpdated`` is when that content was first published:
    the published copy's while the content is the same, else ``now``. Without them the resources stayed
    at version '1' with no date, and a consumer asking what changed since a date learnt nothing."""
    from schemas.omop.spec import check_relation

    digests = {(r["resourceType"], r["id"]): hashlib.sha256(orjson.dumps(
        {k: v for k, v in r.items() if k != "meta"}, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16] for r in resources}
    kept: dict[tuple[str, str], dt.datetime] = {}
    schema, _, table = check_relation(published).partition(".")
    if resources and con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                                 [schema, table]).fetchone()[0]:
        for rtype, rid, version, when in con.execute(
                f"SELECT resource_type, id, version_id, last_updated FROM {published} "
                "WHERE resource_type IN (SELECT unnest(?::VARCHAR[])) AND id IN (SELECT unnest(?::VARCHAR[]))",
                [list(PARTICIPANT_TYPES), sorted({i for _, i in digests})]).fetchall():
            if when is not None and digests.get((rtype, rid)) == version:
                kept[(rtype, rid)] = when
    for r in resources:
        key = (r["resourceType"], r["id"])
        when = kept.get(key, now).astimezone(dt.timezone.utc)
        body = {k: v for k, v in r.items() if k not in ("resourceType", "id", "meta")}
        r.clear()
        r.update({"resourceType": key[0], "id": key[1],
                  "meta": {"versionId": digests[key], "lastUpdated": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"},
                  **body})


def subject_rows(con, nct_id: str, source_rows: str = "raw.sdtm_row_current",
                 exclude: str | None = None) -> dict[str, dict[str, list[dict]]]:
    """The ``rows_by_subject`` argument, read from raw rows of one study minus the gate's exclusions."""
    from schemas.omop.spec import check_relation

    sql = f"SELECT s.usubjid, upper(s.domain), s.record FROM {check_relation(source_rows)} s WHERE s.nct_id = ?"
    if exclude:
        sql += (f" AND NOT EXISTS (SELECT 1 FROM {check_relation(exclude)} x WHERE x.delivery_key = s.delivery_key"
                " AND upper(x.domain) = upper(s.domain) AND x.row_number = s.row_number)")
    out: dict[str, dict[str, list[dict]]] = {}
    for usubjid, domain, record in con.execute(sql + " ORDER BY s.delivery_key, s.domain, s.row_number", [nct_id]).fetchall():
        out.setdefault(usubjid, {}).setdefault(domain, []).append(json.loads(record))
    return out
