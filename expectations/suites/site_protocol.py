"""Suite `site_protocol`: whether site participant data keep their study's protocol.

The delivery contract (schemas/sites/CONTRACT.md) is about form; this suite is about meaning, record
by record, before anything is mapped:

* generic, derived from each study's registry record: age at consent within eligibility
  minimumAge/maximumAge, sex allowed by eligibility sex, ARM/ACTARM that name a registry arm group
  (ARMCD through the protocol file's documented code list), enrolment against the registry target
  (a `warning`: recorded, never quarantines, never blocks);
* study-specific, from `expectations/protocols/<NCT id>.json` (data: thresholds and test codes, so a
  protocol amendment is a file change): screening limits (PHQ-9, BMI), the weight-based dose rule,
  the infusion duration;
* referential: every USUBJID of DS/SV/EX/VS/QS/AE is in the delivery's DM;
* death (transforms/sites/death.py): a participant said to have died has a date of death, and no data
  dated after it; a death record dating it earlier than the date taken is a `warning`.

Thresholds travel in the frames as columns (per row, from that row's study), and the expectations
compare columns (`ExpectColumnPairValuesAToBeGreaterThanB`), so one suite serves many studies.
Which rules hold the whole participant and which only the row is `SCOPE` (see site_gate.py).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from functools import lru_cache
from pathlib import Path

import pandas as pd

from expectations.runtime import Rule
from transforms.ctgov.arm_labels import arm_lookup, find_arm
from transforms.fhir.validate import CONTROL_CHARACTER
from transforms.sites.death import Death, dates_after, death_dates_before, death_of

SUITE = "site_protocol"
PROTOCOL_DIR = Path(__file__).resolve().parents[1] / "protocols"
KEYS = ["delivery_key", "delivery_id", "nct_id", "domain", "row_number", "usubjid"]
# Frame columns returned with every failure besides KEYS, where a frame has them (for the reasons).
DETAIL_COLUMNS = ["field", "expected", "weight", "minutes", "value"]
_UNIT_YEARS = {"year": 1.0, "month": 1 / 12, "week": 7 / 365.25, "day": 1 / 365.25, "hour": 1 / 8766, "minute": 1 / 525960}
_SEXES = {"ALL": ["M", "F", "U", "UNDIFFERENTIATED"], "FEMALE": ["F"], "MALE": ["M"]}

# Participant scope: the finding is about the person (eligibility, arm, orphan records), so every row
# of theirs in the delivery is held; row scope: one administration broke a rule, the rest stand.
PARTICIPANT, ROW = "participant", "row"


def scope(rule_id: str) -> str:
    return ROW if rule_id.startswith(("protocol.dose", "protocol.infusion", "plausibility.end_before_start",
                                      "plausibility.negative_dose")) else PARTICIPANT


@lru_cache(maxsize=None)
def load_protocol(nct_id: str) -> dict:
    """The study's protocol file, or {} (generic rules only) when the study has none."""
    if not re.fullmatch(r"NCT\d{8}", nct_id or ""):
        return {}
    path = PROTOCOL_DIR / f"{nct_id}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def registry_age_years(text: str | None) -> float | None:
    """'18 Years' -> 18.0; '6 Months' -> 0.5; None when absent or unreadable."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+?)s?\s*", text or "")
    if not m or m.group(2).lower() not in _UNIT_YEARS:
        return None
    return float(m.group(1)) * _UNIT_YEARS[m.group(2).lower()]


def study_terms(record: dict) -> dict:
    """What the generic rules need from one API v2 registry record."""
    p = record.get("protocolSection", {})
    elig = p.get("eligibilityModule", {})
    labels = [a.get("label", "") for a in p.get("armsInterventionsModule", {}).get("armGroups", []) if a.get("label")]
    return {"nct_id": p.get("identificationModule", {}).get("nctId"),
            "min_age": registry_age_years(elig.get("minimumAge")),
            "max_age": registry_age_years(elig.get("maximumAge")),
            "sexes": _SEXES.get(elig.get("sex") or "ALL", _SEXES["ALL"]),
            "arms": arm_lookup((x, x) for x in labels),  # transforms.ctgov.arm_labels: a clash matches exactly
            "target": p.get("designModule", {}).get("enrollmentInfo", {}).get("count")}


def _date(text: str | None) -> dt.date | None:
    t = (text or "").strip()
    try:
        return dt.date.fromisoformat(t[:10] if len(t) >= 10 else (t + "-01-01")[:10] if len(t) == 4 else t + "-01")
    except ValueError:
        return None


def _ts(text: str | None) -> dt.datetime | None:
    t = (text or "").strip()
    try:
        return dt.datetime.fromisoformat(t) if len(t) >= 16 else None
    except ValueError:
        return None


def _num(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


# DQD's plausibleValueLow for person.year_of_birth; its high is next year (YEAR(GETDATE())+1).
EARLIEST_BIRTH_YEAR = 1850


def _birth(r: dict, rec: dict) -> list[dict]:
    """The birth a DM row gives, checked as OMOP will publish it (person.sql: BRTHDTC's year, else the
    year of consent minus AGE): a year DQD finds implausible (an AGE of 190 for a study with no maximum age
    passed the registry's range and blocked every publish at DQD), a birth after consent, and a BRTHDTC
    that disagrees with AGE by more than a year (the gate checked AGE while OMOP and FHIR published
    BRTHDTC: a participant of 85 was published against a maximum of 65; a review)."""
    brthdtc = (rec.get("BRTHDTC") or "").strip()
    born, consent, age = _date(brthdtc), _date(rec.get("RFICDTC")), _num(rec.get("AGE"))
    year = born.year if born else (consent.year - int(age) if consent and age is not None else None)
    if year is None:
        return []
    row = {**_key(r), "birth_year": year, "field": "dm.BRTHDTC" if born else "dm.AGE",
           "value": brthdtc if born else rec.get("AGE"),
           "plausible": EARLIEST_BIRTH_YEAR <= year <= dt.date.today().year + 1,
           "born_first": not (born and consent and born > consent), "agrees": True}
    if born and consent and age is not None and (rec.get("AGEU") or "YEARS").rstrip("S").upper() == "YEAR":
        row["agrees"] = abs(age_at_consent({"BRTHDTC": brthdtc, "RFICDTC": rec.get("RFICDTC")}) - age) <= 1
    return [row]


def age_at_consent(rec: dict) -> float | None:
    """AGE (in AGEU) as the site recorded it; else whole years from BRTHDTC (partial dates at the
    first day of their period, so an uncertain birthday errs towards the older age) to RFICDTC."""
    age = _num(rec.get("AGE"))
    if age is not None:
        unit = (rec.get("AGEU") or "YEARS").rstrip("S").lower()
        return age * _UNIT_YEARS.get(unit, 1.0)
    born, ref = _date(rec.get("BRTHDTC")), _date(rec.get("RFICDTC"))
    if born is None or ref is None:
        return None
    return float(ref.year - born.year - ((ref.month, ref.day) < (born.month, born.day)))


# Labels differing only in symbols or script ("Age ≥ 65" / "Age < 65") are told apart only by the exact label.
_NO_ARM = "names no arm group of the registry record, or not exactly one where two labels differ only in symbols or script"


def _arm_known(arm: str | None, code: str | None, codes: dict, arms: dict) -> bool:
    """The arm names a registry arm group, by its label or through the protocol's documented ARMCD list."""
    return find_arm(arms, arm) is not None or find_arm(arms, codes.get(code or "")) is not None


def _key(row: dict) -> dict:
    return {k: row[k] for k in KEYS}


# DQD's plausibleValueLow for the OMOP dates SDTM dates become (event dates 1950-01-01; year of birth
# 1850), and plausibleValueHigh, the day after the run. Checked on the participant here, before
# mapping: past it, one AE dated 0000 failed DQD's batch-level rules and blocked every site's data and
# the registry's batch, with no record held (found by an adversarial review).
_EARLIEST = {"BRTHDTC": dt.date(1850, 1, 1)}
_EARLIEST_EVENT = dt.date(1950, 1, 1)


def _implausible_dates(r: dict, rec: dict, domain: str, latest: dt.date) -> list[dict]:
    """A row per SDTM date of the record outside DQD's plausible range. The contract has passed their
    form, so one `_date` cannot read is year 0000, which the contract's pattern lets through."""
    out = []
    for name, value in rec.items():
        if not name.endswith("DTC") or not isinstance(value, str) or not value.strip():
            continue
        first, earliest = _date(value), _EARLIEST.get(name, _EARLIEST_EVENT)
        if first is None or not earliest <= first <= latest:
            out.append({**_key(r), "value": value, "plausible": False, "field": f"{domain.lower()}.{name}",
                        "expected": f"{earliest.isoformat()} to {latest.isoformat()}"})
    return out


# R5 strings carry no character below U+0020 but tab, CR and LF, and FHIR validation now says so: a DS
# row's DSDECOD (a withdrawal's reason text) holding one failed the participants' FHIR validation, which
# blocks the site step as a mapping fault would. Such a value is held here, with its participant. Only
# the values the participant mapping writes as FHIR text (transforms/fhir/research_subject.py; dates and
# codes have the contract's patterns): an AETERM never reaches FHIR, and OMOP keeps it as it is.
FHIR_TEXT = {"DS": ("DSDECOD",)}


def _control_characters(r: dict, rec: dict, domain: str) -> list[dict]:
    return [{**_key(r), "value": value[:120], "clean": False,  # the reason quotes it as repr does: \x0b
             "field": f"{domain.lower()}.{name}"}
            for name in FHIR_TEXT.get(domain, ()) if isinstance(value := rec.get(name), str) and CONTROL_CHARACTER.search(value)]


# An event's end before its start: an AE mapped so blocked the whole publish (DQD's
# plausibleStartBeforeEnd on condition_occurrence, a batch rule), and an exposure's or a visit's end
# was moved to its start without a word. Now the row is held, alone.
_START_END = {"AE": ("AESTDTC", "AEENDTC"), "EX": ("EXSTDTC", "EXENDTC"), "SV": ("SVSTDTC", "SVENDTC")}


def _row_plausibility(r: dict, rec: dict, domain: str) -> tuple[list[dict], list[dict]]:
    """(end before start, negative dose) failures of one SDTM row, each a row of its frame."""
    order, sign = [], []
    if domain in _START_END:
        start_name, end_name = _START_END[domain]
        start, end = (rec.get(start_name) or "").strip(), (rec.get(end_name) or "").strip()
        # at the precision both have: an end of 2025-03 is not before a start of 2025-03-07, one of 2025-02 is
        if len(start) >= 4 and len(end) >= 4 and end[:len(start)] < start[:len(end)]:
            order.append({**_key(r), "value": end, "ordered": False, "field": f"{domain.lower()}.{end_name}",
                          "start": start})
    if domain == "EX":
        dose = _num(rec.get("EXDOSE"))
        if dose is not None and dose < 0:
            sign.append({**_key(r), "value": rec.get("EXDOSE"), "non_negative": False, "field": "ex.EXDOSE"})
    return order, sign


def _death_frames(rows: list[dict], held_rows: set[int]) -> tuple[list[dict], list[dict], list[dict]]:
    """(undated deaths, data dated after a death, earlier death dates): a row per DM row of a
    participant said to have died with no date anywhere (OMOP's death_date is required, so the death
    would vanish), a row per SDTM date of a participant later than their death (transforms.sites.death),
    and a row per death record dating the death before the date taken (DM's 2026-02-03 is taken over a
    DS DEATH on 2026-01-15: published, but one of them is wrong, and nothing said so). `held_rows`:
    id() of the AE rows held alone for ending before they start."""
    by_subject: dict[tuple, list[dict]] = {}
    for r in rows:
        by_subject.setdefault((r["delivery_key"], r["usubjid"]), []).append(r)
    undated, later, earlier = [], [], []
    for subject_rows in by_subject.values():
        domains: dict[str, list[dict]] = {}
        every: dict[str, list[dict]] = {}
        for r in subject_rows:
            every.setdefault(r["domain"], []).append(r["record"])
            # An AE ending before it starts is held alone (plausibility.end_before_start): its end cannot
            # date a death, or the mapping, which never sees the row, would drop the death for want of a date.
            if id(r) in held_rows:
                continue
            domains.setdefault(r["domain"], []).append(r["record"])
        death = death_of(domains)
        if death is None:
            said = death_of(every)  # but it still says they died: the participant is held, not published alive
            if said is None:
                continue
            death = Death(None, said.signal.split(" = ")[0], said.signal)
        if death.dtc is None:
            undated += [{**_key(r), "value": death.signal.split(" = ")[1].strip("'"), "dated": False,
                         "field": death.signal.split(" = ")[0]} for r in subject_rows if r["domain"] == "DM"]
            continue
        row_of = {id(r["record"]): r for r in subject_rows}
        for domain, rec, name, value in dates_after(domains, death.dtc):
            later.append({**_key(row_of[id(rec)]), "value": value, "before_death": False,
                          "field": f"{domain.lower()}.{name}", "expected": f"on or before {death.dtc} ({death.field})"})
        for domain, rec, name, value in death_dates_before(domains, death.dtc):
            earlier.append({**_key(row_of[id(rec)]), "value": value, "agrees": False,
                            "field": f"{domain.lower()}.{name}", "expected": f"{death.dtc} ({death.field})"})
    return undated, later, earlier


def _who(r: dict) -> tuple:
    return r["delivery_key"], r["usubjid"]


def _in_epoch(rec: dict, domain: str, epoch: str, first_dose: str | None) -> bool:
    """Whether a row was taken in the protocol's epoch (SCREENING): its EPOCH, or, EPOCH being optional
    in the contract, its VISIT; with neither, a screening row is one dated before the first dose (DM's
    RFSTDTC). By EPOCH alone, rows without it went unchecked: a screening BMI of 45 and a PHQ-9 of 5
    were published (a review)."""
    given = (rec.get("EPOCH") or "").strip().upper()
    if given:
        return given == epoch
    visit = (rec.get("VISIT") or "").strip().upper()
    if visit:
        return visit == epoch
    on = (rec.get(f"{domain}DTC") or "").strip()
    return epoch == "SCREENING" and bool(on) and bool(first_dose) and on[:len(first_dose)] < first_dose[:len(on)]


def build_frames(rows: list[dict], registries: dict[str, dict]) -> dict[str, pd.DataFrame]:
    """Frames for `rules()`. `rows`: SDTM rows (KEYS + `record` dict) of studies in `registries`
    (nct_id -> API v2 record)."""
    terms = {n: study_terms(r) for n, r in registries.items()}
    dm_ids = {(r["delivery_key"], r["usubjid"]) for r in rows if r["domain"] == "DM"}
    consents = {_who(r): (r["record"].get("RFICDTC") or "").strip() for r in rows if r["domain"] == "DM"}
    firsts = {_who(r): (r["record"].get("RFSTDTC") or "").strip() for r in rows if r["domain"] == "DM"}
    out: dict[str, list[dict]] = {"dm": [], "subject_rows": [], "dose": [], "dose_weight": [], "infusion": [],
                                  "dates": [], "date_order": [], "dose_sign": [], "text": [], "dm_birth": [],
                                  "dose_unit": [], "ds_consent": []}
    latest = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)
    limits: dict[str, list[dict]] = {}
    weights: dict[tuple, list[tuple]] = {}
    # USUBJID -> the current deliveries with a DM row of it. In two (two sites, or two studies), the
    # first delivery's row made the person and the other's vanished, its events filed under the first
    # participant if they disagreed, and their rows got the same ids (duplicate keys, a blocked
    # publish) if they agreed. So the participant is held in both.
    who: dict[str, set[int]] = {}
    for r in rows:
        rec = r["record"]
        if r["domain"] == "DM":
            who.setdefault(r["usubjid"], set()).add(r["delivery_key"])
        if r["domain"] == "VS":
            w = _num(rec.get("VSSTRESN"))
            if w is not None:
                weights.setdefault((r["delivery_key"], r["usubjid"], rec.get("VSTESTCD")), []).append(
                    (rec.get("VISITNUM"), rec.get("VSDTC") or "", w))
    ended_early: set[int] = set()  # AE rows held alone for ending before they start
    for r in rows:
        rec, t, proto = r["record"], terms[r["nct_id"]], load_protocol(r["nct_id"])
        d = r["domain"]
        out["dates"] += _implausible_dates(r, rec, d, latest)
        out["text"] += _control_characters(r, rec, d)
        order, sign = _row_plausibility(r, rec, d)
        if order and d == "AE":
            ended_early.add(id(r))
        out["date_order"] += order
        out["dose_sign"] += sign
        if d == "DM":
            codes = proto.get("arm_codes") or {}
            consistent = not codes or all(find_arm(t["arms"], rec.get(a)) is not None
                                          and find_arm(t["arms"], codes.get(rec.get(c) or "")) == find_arm(t["arms"], rec.get(a))
                                          for c, a in (("ARMCD", "ARM"), ("ACTARMCD", "ACTARM")))
            out["dm"].append({**_key(r), "age": age_at_consent(rec), "one_person": len(who[r["usubjid"]]) == 1,
                              "age_min": t["min_age"] if t["min_age"] is not None else 0.0,
                              "age_max": t["max_age"] if t["max_age"] is not None else 999.0,
                              "expected": _age_range(t["min_age"], t["max_age"]),
                              "sex": rec.get("SEX"), "sex_allowed": rec.get("SEX") in t["sexes"],
                              "arm_known": _arm_known(rec.get("ARM"), rec.get("ARMCD"), codes, t["arms"]),
                              "actarm_known": _arm_known(rec.get("ACTARM"), rec.get("ACTARMCD"), codes, t["arms"]),
                              "armcd_consistent": consistent})
            out["dm_birth"] += _birth(r, rec)
            continue
        out["subject_rows"].append({**_key(r), "in_dm": (r["delivery_key"], r["usubjid"]) in dm_ids,
                                    "field": f"{d.lower()}.USUBJID"})
        if d == "DS":
            # A disposition before consent ended the participant's time on study before it began: FHIR's
            # ResearchSubject.period ran from the consent back to it, which R5 forbids (per-1; a review).
            on, consent = (rec.get("DSSTDTC") or "").strip(), consents.get(_who(r), "")
            if len(on) >= 4 and len(consent) >= 4 and on[:len(consent)] < consent[:len(on)]:
                out["ds_consent"].append({**_key(r), "value": on, "after_consent": False, "field": "ds.DSSTDTC",
                                          "expected": consent})
        for lim in proto.get("screening_limits", []):
            if d == lim["domain"] and rec.get(f"{d}TESTCD") == lim["testcd"] and _in_epoch(rec, d, lim["epoch"],
                                                                                        firsts.get(_who(r))):
                limits.setdefault(lim["name"], []).append(
                    {**_key(r), "value": _num(rec.get(f"{d}STRESN")), "low": lim.get("min", float("-inf")),
                     "high": lim.get("max", float("inf")), "field": f"{d.lower()}.{d}STRESN"})
        dose = proto.get("dose")
        if d == "EX" and dose and (rec.get("EXTRT") or "").upper() == dose["extrt"]:
            w = _weight(weights.get((r["delivery_key"], r["usubjid"], dose["weight_testcd"]), []), rec)
            out["dose_weight"].append({**_key(r), "weight_found": w is not None})
            # the rule is in the protocol's unit: 43 g passed as 43 mg and was published so (a review)
            out["dose_unit"].append({**_key(r), "unit_ok": (rec.get("EXDOSU") or "").strip().lower() == dose["unit"].lower()})
            given = _num(rec.get("EXDOSE"))
            if w is not None and given is not None:
                expected = min(dose["mg_per_kg"] * w, dose["max_mg"])
                out["dose"].append({**_key(r), "EXDOSE": given, "weight": w, "expected": round(expected, 2),
                                    "deviation_pct": abs(given - expected) / expected * 100 if expected else 0.0,
                                    "tolerance_pct": float(dose["tolerance_pct"])})
        inf = proto.get("infusion")
        if d == "EX" and inf and (rec.get("EXROUTE") or "").upper() == inf["route"]:
            st, en = _ts(rec.get("EXSTDTC")), _ts(rec.get("EXENDTC"))
            if st and en:
                minutes = (en - st).total_seconds() / 60
                out["infusion"].append({**_key(r), "minutes": minutes, "deviation_min": abs(minutes - inf["minutes"]),
                                        "tolerance_min": float(inf["tolerance_minutes"])})
    out["death_undated"], out["after_death"], out["death_dates"] = _death_frames(rows, ended_early)
    frames = {name: pd.DataFrame(v, columns=None if v else KEYS) for name, v in out.items()}
    frames["dm_age"] = frames["dm"][frames["dm"]["age"].notna()] if "age" in frames["dm"] else frames["dm"]
    for name, v in limits.items():
        f = pd.DataFrame(v)
        frames[f"screening.{name}"] = f[f["value"].notna()]
    # Every limit's frame, rows or none: `rules()` checks each limit of the batch's protocols, and a delivery
    # with no screening row for one (only dm.csv, as the contract allows) crashed the site step on a missing
    # frame, failing the run and the registry's publish with it (a review).
    for lim in screening_limits(registries):
        frames.setdefault(f"screening.{lim['name']}", pd.DataFrame(columns=KEYS + ["value", "low", "high", "field"]))
    enrol = {}
    for r in rows:
        if r["domain"] == "DM":
            enrol.setdefault(r["nct_id"], set()).add(r["usubjid"])
    frames["enrolment"] = pd.DataFrame(
        [{"nct_id": n, "participants": float(len(s)), "target": float(terms[n]["target"])}
         for n, s in enrol.items() if terms[n]["target"] is not None],
        columns=["nct_id", "participants", "target"])
    return frames


def _weight(found: list[tuple], ex: dict) -> float | None:
    """Weight for a dose: same visit, latest measured at or before the infusion start; else the
    latest before the start at any visit (protocols weigh before dosing)."""
    start = ex.get("EXSTDTC") or ""
    same = [f for f in found if ex.get("VISITNUM") and f[0] == ex.get("VISITNUM")]
    before = [f for f in (same or found) if not start or f[1] <= start]
    pick = before or same
    return max(pick, key=lambda f: f[1])[2] if pick else None


def _pair(rid, frame, a, b, shown, field, message, level="record") -> Rule:
    """A >= B row by row; `shown` is the column whose value the reason quotes."""
    return Rule(rid, frame, shown, field,
                lambda g, a=a, b=b: g.expectations.ExpectColumnPairValuesAToBeGreaterThanB(column_A=a, column_B=b, or_equal=True),
                level=level, message=message)


def _true(rid, frame, column, shown, field, message, level="record") -> Rule:
    """`column` (a flag computed in build_frames) is True; `shown` is the SDTM variable the reason quotes."""
    return Rule(rid, frame, shown, field,
                lambda g, c=column: g.expectations.ExpectColumnValuesToBeInSet(column=c, value_set=[True]),
                level=level, message=message)


def _age_range(low: float | None, high: float | None) -> str:
    """The registry's eligible ages as a hold's reason states them (it said "is above the registry's
    maximumAge" without the maximum)."""
    def years(v: float) -> str:
        return f"{v:g}" if v == round(v, 2) else f"{v:.2f}"

    if low is None and high is None:
        return "no age limits"
    if high is None:
        return f"{years(low)} years or more"
    return f"{years(low or 0.0)} to {years(high)} years"


def screening_limits(nct_ids) -> list[dict]:
    """The screening limits the protocols of these studies define, one per name."""
    return list({lim["name"]: lim for n in sorted(nct_ids) for lim in load_protocol(n).get("screening_limits", [])}.values())


def rules(limits: list[dict] = ()) -> list[Rule]:
    """Every rule; `limits`: `screening_limits()` of the batch's studies."""
    out = [
        _pair("eligibility.age_min", "dm_age", "age", "age_min", "age", "dm.AGE", "is below the registry's minimumAge"),
        _pair("eligibility.age_max", "dm_age", "age_max", "age", "age", "dm.AGE", "is above the registry's maximumAge"),
        _true("eligibility.sex", "dm", "sex_allowed", "SEX", "dm.SEX", "is not allowed by the registry's eligibility sex"),
        _true("plausibility.birth_year", "dm_birth", "plausible", "value", "dm.AGE",
              f"gives a year of birth before {EARLIEST_BIRTH_YEAR} or after next year (DQD's plausibleValueLow/High "
              "for person.year_of_birth)"),
        _true("plausibility.born_before_consent", "dm_birth", "born_first", "value", "dm.BRTHDTC",
              "lies after the participant's informed consent (RFICDTC)"),
        _true("plausibility.age_agrees_with_birth", "dm_birth", "agrees", "value", "dm.BRTHDTC",
              "and RFICDTC give an age more than a year from AGE: OMOP and FHIR publish the birth date, the "
              "registry's eligibility is checked on AGE"),
        _true("arm.arm_in_registry", "dm", "arm_known", "ARM", "dm.ARM", _NO_ARM),
        _true("arm.actarm_in_registry", "dm", "actarm_known", "ACTARM", "dm.ACTARM", _NO_ARM),
        _true("arm.armcd_matches_protocol", "dm", "armcd_consistent", "ARMCD", "dm.ARMCD",
              "does not match ARM/ACTARM through the protocol's arm code list"),
        _true("referential.one_person_per_usubjid", "dm", "one_person", "USUBJID", "dm.USUBJID",
              "is in the DM of another current delivery too: a participant's data must come from one delivery "
              "(one who moved site is held until the old site's next delivery leaves them out)"),
        _true("referential.subject_in_dm", "subject_rows", "in_dm", "USUBJID", "USUBJID", "is not in the delivery's dm.csv"),
        _true("plausibility.date", "dates", "plausible", "value", "--DTC",
              "lies outside the plausible dates of the OMOP field it maps to (DQD's plausibleValueLow/High)"),
        _true("plausibility.end_before_start", "date_order", "ordered", "value", "--ENDTC",
              "lies before the row's start date (AESTDTC / EXSTDTC / SVSTDTC)"),
        _true("completeness.death_date", "death_undated", "dated", "value", "dm.DTHDTC",
              "says the participant died, but no DTHDTC, DS DEATH DSSTDTC or fatal AE's AEENDTC gives the date "
              "(OMOP's death_date is required)"),
        _true("plausibility.after_death", "after_death", "before_death", "value", "--DTC",
              "lies after the participant's death date"),
        _true("plausibility.death_dates_agree", "death_dates", "agrees", "value", "--DTC",
              "dates the death before the date taken", level="warning"),
        _true("plausibility.control_characters", "text", "clean", "value", "--",
              "holds a control character (below U+0020, other than tab, CR and LF), which FHIR text cannot carry"),
        _true("plausibility.negative_dose", "dose_sign", "non_negative", "value", "ex.EXDOSE", "is a negative dose"),
        _pair("protocol.dose_rule", "dose", "tolerance_pct", "deviation_pct", "EXDOSE", "ex.EXDOSE",
              "deviates from the protocol's weight-based dose by more than the tolerance"),
        _true("plausibility.ds_before_consent", "ds_consent", "after_consent", "value", "ds.DSSTDTC",
              "dates a disposition before the participant's informed consent (dm.RFICDTC), where their time on "
              "study begins"),
        _true("protocol.dose_unit", "dose_unit", "unit_ok", "EXDOSU", "ex.EXDOSU",
              "is not the unit of the protocol's dose rule (its file's `dose.unit`)"),
        _true("protocol.dose_weight_recorded", "dose_weight", "weight_found", "EXDOSE", "ex.EXDOSE",
              "has no body weight recorded before the infusion, so the dose rule cannot be checked"),
        _pair("protocol.infusion_duration", "infusion", "tolerance_min", "deviation_min", "minutes", "ex.EXENDTC",
              "gives an infusion duration outside the protocol's minutes +/- tolerance"),
        _pair("registry.enrolment_target", "enrolment", "target", "participants", "participants",
              "protocolSection.designModule.enrollmentInfo.count",
              "participants exceed the registry's enrolment target", level="warning"),
    ]
    for lim in limits:
        d, name = lim["domain"], lim["name"]
        field = f"{d.lower()}.{d}STRESN"
        if "min" in lim:
            out.append(_pair(f"protocol.{name}", f"screening.{name}", "value", "low", "value", field,
                             f"is below the protocol's screening minimum for {lim['testcd']} ({lim['why']})"))
        if "max" in lim:
            out.append(_pair(f"protocol.{name}", f"screening.{name}", "high", "value", "value", field,
                             f"is above the protocol's screening maximum for {lim['testcd']} ({lim['why']})"))
    return out
