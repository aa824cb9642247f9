"""Seeded synthetic site deliveries (schemas/sites/CONTRACT.md) for demos, tests and benchmarks.

No real participant ever appears: every value is drawn from `random.Random` seeded by the arguments,
so the same arguments give the same bytes (no wall-clock time, fixed column order and float
formatting, rows sorted). For NCT06668571 the data follow its protocol (eligibility, 1:1
randomisation, the weight-based ketamine dose, the 40-minute infusion, the visit schedule), so that
protocol checks have something true to confirm and `plant` something false to catch.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import json
import random
import sys
from pathlib import Path

from schemas.sites import contract

SEED_STUDY = "NCT06668571"
STUDY_START = dt.date(2025, 2, 10)  # the registry's startDateStruct
DEFAULT_CUTOFF = "2026-06-30"
ARMS = (("KET", "Ketamine Group"), ("PBO", "Normal Saline/Placebo Group"))  # registry armGroups labels
# The record carries no geoPoint for this site; this is the registry's point for Rochester, Minnesota
# (as in other records of the corpus with a site there).
REAL_SITE = {"facility": "Mayo Clinic in Rochester", "city": "Rochester", "state": "Minnesota",
             "country": "United States", "latitude": "44.02163", "longitude": "-92.4699"}
VISITS = {1: ("SCREENING", "SCREENING"), 2: ("INFUSION", "TREATMENT"), 3: ("DAY 1", "FOLLOW-UP"),
          4: ("DAY 7", "FOLLOW-UP"), 5: ("OPEN-LABEL INFUSION", "OPEN LABEL TREATMENT")}
INFUSION_MINUTES = 40
PHQ_ITEMS = ("Little interest or pleasure in doing things", "Feeling down, depressed, or hopeless",
             "Trouble falling or staying asleep, or sleeping too much", "Feeling tired or having little energy",
             "Poor appetite or overeating", "Feeling bad about yourself",
             "Trouble concentrating on things", "Moving or speaking slowly, or being fidgety or restless",
             "Thoughts that you would be better off dead or of hurting yourself")
PHQ_ANSWERS = ("Not at all", "Several days", "More than half the days", "Nearly every day")
# (AETERM, AEDECOD, probability on ketamine, on saline, onset minutes after start, duration minutes)
AE_CATALOGUE = (("Feeling detached from surroundings", "DISSOCIATION", 0.55, 0.05, (5, 30), (20, 90)),
                ("Nausea", "NAUSEA", 0.25, 0.07, (20, 60), (30, 240)),
                ("Headache", "HEADACHE", 0.20, 0.12, (30, 180), (60, 600)),
                ("Elevated blood pressure during infusion", "BLOOD PRESSURE INCREASED", 0.18, 0.03, (10, 35), (15, 60)),
                ("Dizziness", "DIZZINESS", 0.20, 0.06, (10, 60), (20, 120)))
VS_UNITS = {"WEIGHT": ("Weight", "kg", 1), "HEIGHT": ("Height", "cm", 1), "BMI": ("Body Mass Index", "kg/m2", 1),
            "SYSBP": ("Systolic Blood Pressure", "mmHg", 0), "DIABP": ("Diastolic Blood Pressure", "mmHg", 0),
            "HR": ("Heart Rate", "beats/min", 0)}
RACES = (("WHITE", 78), ("BLACK OR AFRICAN AMERICAN", 8), ("ASIAN", 6), ("AMERICAN INDIAN OR ALASKA NATIVE", 2),
         ("MULTIPLE", 3), ("NOT REPORTED", 3))
ETHNICITIES = (("NOT HISPANIC OR LATINO", 90), ("HISPANIC OR LATINO", 7), ("NOT REPORTED", 3))
VIOLATIONS = ("dose_above_rule", "age_70", "bmi_43", "ex_subject_not_in_dm", "arm_not_in_registry",
              "checksum_mismatch", "missing_file", "missing_column", "bad_date", "unknown_code", "implausible_date",
              "ae_end_before_start", "negative_dose", "death_without_date", "data_after_death")


def _pick(rng: random.Random, weighted) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _dtc(moment: dt.datetime | dt.date) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M") if isinstance(moment, dt.datetime) else moment.isoformat()


def ketamine_dose(weight_kg: float) -> float:
    """0.5 mg/kg of actual body weight, at most 50 mg (reached at 100 kg)."""
    return round(min(0.5 * weight_kg, 50.0), 1)


class _Subject:
    """One randomised participant's records; sequence numbers are assigned when the files are written."""

    def __init__(self, study: str, site_id: str, number: int, arm: tuple[str, str], cutoff: dt.date):
        self.study, self.cutoff = study, cutoff
        self.usubjid = f"{study}-{site_id}-{number:04d}"
        self.subjid, self.site_id, self.arm = f"{site_id}-{number:04d}", site_id, arm
        self.rows: dict[str, list[dict]] = {d: [] for d in contract.DOMAINS}

    def add(self, domain: str, **values) -> None:
        self.rows[domain].append({"STUDYID": self.study, "DOMAIN": domain.upper(), "USUBJID": self.usubjid, **values})

    def visit(self, num: int) -> dict:
        name, epoch = VISITS[num]
        return {"VISITNUM": str(num), "VISIT": name, "EPOCH": epoch}

    def vital(self, num: int, code: str, value: float, when: dt.datetime, tpt: str = "") -> None:
        test, unit, places = VS_UNITS[code]
        text = f"{value:.{places}f}"
        self.add("vs", VSTESTCD=code, VSTEST=test, VSORRES=text, VSORRESU=unit, VSSTRESC=text, VSSTRESN=text,
                 VSSTRESU=unit, **self.visit(num), VSTPT=tpt, VSDTC=_dtc(when))

    def phq9(self, rng: random.Random, num: int, total: int, when: dt.datetime) -> None:
        items = [0] * 9
        for _ in range(total):
            i = rng.choice([k for k in range(9) if items[k] < 3])
            items[i] += 1
        for k, score in enumerate(items):
            self.add("qs", QSCAT="PHQ-9", QSTESTCD=f"PHQ01{k + 1:02d}", QSTEST=f"PHQ01-{PHQ_ITEMS[k]}",
                     QSORRES=PHQ_ANSWERS[score], QSSTRESC=str(score), QSSTRESN=str(score), **self.visit(num), QSDTC=_dtc(when))
        self.add("qs", QSCAT="PHQ-9", QSTESTCD="PHQ9TOT", QSTEST="PHQ01-Total Score", QSORRES=str(total),
                 QSSTRESC=str(total), QSSTRESN=str(total), **self.visit(num), QSDTC=_dtc(when))

    def infusion(self, rng: random.Random, num: int, start: dt.datetime, weight: float, ketamine: bool,
                 bp: tuple[float, float, float], ae_scale: float) -> None:
        end = start + dt.timedelta(minutes=INFUSION_MINUTES)
        self.add("sv", **self.visit(num), SVSTDTC=_dtc(start - dt.timedelta(minutes=60)),
                 SVENDTC=_dtc(end + dt.timedelta(minutes=120)))
        self.add("ex", EXTRT="KETAMINE" if ketamine else "PLACEBO",
                 EXDOSE=f"{ketamine_dose(weight) if ketamine else 0.0:.1f}", EXDOSU="mg", EXDOSFRM="SOLUTION",
                 EXROUTE="INTRAVENOUS", **self.visit(num), EXSTDTC=_dtc(start), EXENDTC=_dtc(end))
        epoch = VISITS[num][1]
        rise = 0.0
        for term, decod, p_ket, p_pbo, onset, duration in AE_CATALOGUE:
            if rng.random() >= (p_ket if ketamine else p_pbo) * ae_scale:
                continue
            if decod == "BLOOD PRESSURE INCREASED":
                rise = 22.0
            began = start + dt.timedelta(minutes=rng.randint(*onset))
            sev = _pick(rng, (("MILD", 70), ("MODERATE", 27), ("SEVERE", 3)))
            rel = _pick(rng, (("PROBABLE", 60), ("POSSIBLE", 40))) if ketamine else _pick(rng, (("POSSIBLE", 40), ("NONE", 60)))
            self.add("ae", AETERM=term, AEDECOD=decod, AESEV=sev, AESER="N", AEREL=rel, AEOUT="RECOVERED/RESOLVED",
                     EPOCH=epoch, AESTDTC=_dtc(began), AEENDTC=_dtc(began + dt.timedelta(minutes=rng.randint(*duration))))
        sbp, dbp, hr = bp
        pre = start - dt.timedelta(minutes=15)
        up = (rng.gauss(14, 5) + rise, rng.gauss(8, 3) + rise / 2, rng.gauss(8, 4)) if ketamine else \
             (rng.gauss(1, 3), rng.gauss(0.5, 2), rng.gauss(0, 3))
        for tpt, when, delta in (("PRE-DOSE", pre, (0, 0, 0)), ("END OF INFUSION", end, up)):
            for code, base, d in zip(("SYSBP", "DIABP", "HR"), (sbp, dbp, hr), delta):
                self.vital(num, code, round(base + d + rng.gauss(0, 2)), when, tpt)
        self.vital(num, "WEIGHT", weight, start - dt.timedelta(minutes=45), "PRE-DOSE")


def _clip(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


def _simulate(rng: random.Random, s: _Subject, screen: dt.date) -> None:
    """Screening, the blinded infusion, day 1 and day 7 follow-up, an optional open-label infusion."""
    ketamine = s.arm[0] == "KET"
    sex = "F" if rng.random() < 0.6 else "M"
    age = rng.randint(18, 65)
    try:
        latest_birth = screen.replace(year=screen.year - age)
    except ValueError:  # 29 February
        latest_birth = screen.replace(year=screen.year - age, day=28)
    birth = latest_birth - dt.timedelta(days=rng.randint(0, 364))
    height = round(rng.gauss(163 if sex == "F" else 177, 7), 1)
    weight = round(_clip(rng.gauss(29, 5), 18.5, 39.0) * (height / 100) ** 2, 1)
    bmi = lambda w: round(w / (height / 100) ** 2, 1)  # noqa: E731
    bp = (rng.gauss(122, 10), rng.gauss(78, 7), rng.gauss(74, 8))
    day0 = screen + dt.timedelta(days=rng.randint(3, 14))
    t0 = dt.datetime.combine(day0, dt.time(9)) + dt.timedelta(minutes=5 * rng.randrange(48))
    phq_screen = int(_clip(round(rng.gauss(19.5, 3)), 15, 27))
    phq_base = int(_clip(round(phq_screen + rng.gauss(0, 1.5)), 12, 27))
    drop1, drop7 = (rng.gauss(0.45, 0.2), rng.gauss(0.30, 0.2)) if ketamine else (rng.gauss(0.15, 0.15), rng.gauss(0.12, 0.15))
    withdraw = _pick(rng, (("", 90), ("INFUSION", 5), ("DAY 1", 5)))
    withdraw_reason = _pick(rng, (("WITHDRAWAL BY SUBJECT", 60), ("LOST TO FOLLOW-UP", 30), ("PHYSICIAN DECISION", 10)))
    open_label = rng.random() < 0.6

    s.add("dm", SUBJID=s.subjid, RFICDTC=screen.isoformat(), SITEID=s.site_id, BRTHDTC=birth.isoformat()[:7],
          AGE=str(age), AGEU="YEARS", SEX=sex, RACE=_pick(rng, RACES), ETHNIC=_pick(rng, ETHNICITIES),
          ARMCD=s.arm[0], ARM=s.arm[1], ACTARMCD=s.arm[0], ACTARM=s.arm[1], COUNTRY="USA")
    seen = dt.datetime.combine(screen, dt.time(10)) + dt.timedelta(minutes=5 * rng.randrange(36))
    s.add("sv", **s.visit(1), SVSTDTC=screen.isoformat(), SVENDTC=screen.isoformat())
    for code, value in (("HEIGHT", height), ("WEIGHT", weight), ("BMI", bmi(weight)),
                        ("SYSBP", round(bp[0])), ("DIABP", round(bp[1])), ("HR", round(bp[2]))):
        s.vital(1, code, value, seen)
    s.phq9(rng, 1, phq_screen, seen + dt.timedelta(minutes=20))
    w0 = round(weight + rng.gauss(0, 0.6), 1)
    s.infusion(rng, 2, t0, w0, ketamine, bp, 1.0)
    s.vital(2, "BMI", bmi(w0), t0 - dt.timedelta(minutes=45), "PRE-DOSE")
    s.phq9(rng, 2, phq_base, t0 - dt.timedelta(minutes=30))
    exposures = [t0]
    last = day0
    for num, days, drop in ((3, 1, drop1), (4, 7, drop7)):
        if withdraw and VISITS[num - 1][0] == withdraw:
            when = last + dt.timedelta(days=rng.randint(1, 3))
            if when <= s.cutoff:
                s.add("ds", DSTERM=withdraw_reason.capitalize(), DSDECOD=withdraw_reason, DSCAT="DISPOSITION EVENT",
                      EPOCH="FOLLOW-UP", DSSTDTC=when.isoformat())
            break
        at = t0 + dt.timedelta(days=days, minutes=rng.randint(-60, 90))
        if at.date() > s.cutoff:
            break  # still ongoing at the cut-off
        last = at.date()
        s.add("sv", **s.visit(num), SVSTDTC=last.isoformat(), SVENDTC=last.isoformat())
        for code, base in zip(("SYSBP", "DIABP", "HR"), bp):
            s.vital(num, code, round(base + rng.gauss(0, 4)), at)
        s.phq9(rng, num, int(_clip(round(phq_base * (1 - drop)), 0, 27)), at + dt.timedelta(minutes=10))
        if num == 4:
            w7 = round(w0 + rng.gauss(0, 0.6), 1)
            s.vital(4, "WEIGHT", w7, at)
            s.vital(4, "BMI", bmi(w7), at)
            if open_label:  # same day, after the day-7 assessments
                t_ol = at + dt.timedelta(minutes=60 + 5 * rng.randrange(24))
                s.infusion(rng, 5, t_ol, w7, True, bp, 0.7)
                exposures.append(t_ol)
            s.add("ds", DSTERM="Completed", DSDECOD="COMPLETED", DSCAT="DISPOSITION EVENT", EPOCH="FOLLOW-UP",
                  DSSTDTC=last.isoformat())
    dm = s.rows["dm"][0]
    dm["RFSTDTC"] = _dtc(exposures[0])
    dm["RFENDTC"] = _dtc(exposures[-1] + dt.timedelta(minutes=INFUSION_MINUTES))


def _die(rng: random.Random, s: _Subject) -> None:
    """A death after the participant's last data (none of it dated later), said in all three places SDTM
    keeps one: DM (DTHFL, DTHDTC), a DS DEATH disposition and a serious AE with outcome FATAL whose end is
    the death. Its own random stream, so the other participants' data do not change with ``deaths``."""
    last = max(dt.date.fromisoformat(v[:10]) for rows in s.rows.values() for r in rows
               for k, v in r.items() if k.endswith("DTC") and k != "BRTHDTC" and v)
    death = max(last, min(last + dt.timedelta(days=rng.randint(3, 30)), s.cutoff))
    onset = max(last, death - dt.timedelta(days=rng.randint(0, 2)))
    s.add("ae", AETERM="Myocardial infarction", AEDECOD="MYOCARDIAL INFARCTION", AESEV="SEVERE", AESER="Y",
          AEREL="NONE", AEOUT="FATAL", EPOCH="FOLLOW-UP", AESTDTC=onset.isoformat(), AEENDTC=death.isoformat())
    s.add("ds", DSTERM="Death", DSDECOD="DEATH", DSCAT="DISPOSITION EVENT", EPOCH="FOLLOW-UP", DSSTDTC=death.isoformat())
    s.rows["dm"][0].update(DTHFL="Y", DTHDTC=death.isoformat())


def _site_row(study: str, site_id: str, k: int, enrolled: int) -> dict:
    if k == 1 and study == SEED_STUDY:
        place = dict(REAL_SITE)
    else:
        place = {"facility": f"Synthetic Site {k}", "city": f"Fictional City {k}", "state": "", "country": "United States",
                 "latitude": "", "longitude": ""}
    return {"site_id": site_id, "nct_id": study, **place, "address": "", "postal_code": "", "status": "RECRUITING",
            "activated_on": (STUDY_START + dt.timedelta(days=45 * (k - 1))).isoformat(),
            "principal_investigator": f"Synthetic Investigator {k}", "target_enrollment": str(enrolled)}


def _csv_bytes(kind: str, rows: list[dict]) -> bytes:
    cols = contract.columns(kind)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([r.get(c, "") for c in cols])
    return buf.getvalue().encode("utf-8")


def write_manifest(folder: Path, meta: dict, names: list[str]) -> Path:
    """(Re)write manifest.json listing `names` with their current sha256, size and row count."""
    files = []
    for name in names:
        data = (folder / name).read_bytes()
        rows = sum(1 for r in csv.reader(io.StringIO(data.decode("utf-8"))) if r) - 1
        files.append({"name": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "rows": max(rows, 0)})
    keep = ("contract_version", "delivery_id", "nct_id", "site_id", "cutoff_date", "generator")
    manifest = {k: meta[k] for k in keep if k in meta} | {"files": files}
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def generate_delivery(out_dir: Path, *, study: str = SEED_STUDY, participants: int, sites: int, seed: int,
                      delivery_id: str | None = None, cutoff: str | None = None, deaths: int = 0) -> list[Path]:
    """Write one delivery folder per site under out_dir and return the folders, sorted.

    Participants are enrolled in order from the study start to three weeks before the cut-off,
    randomised centrally in permuted blocks of two (so arms differ by at most one overall), and
    dealt to sites a block at a time. ``deaths`` of them, drawn by the seed, die after their last visit.
    """
    if participants < 1 or sites < 1:
        raise ValueError("participants and sites must be at least 1")
    if not 0 <= deaths <= participants:
        raise ValueError(f"deaths must be from 0 to the {participants} participants")
    try:
        cut = dt.date.fromisoformat(cutoff or DEFAULT_CUTOFF)
    except ValueError:
        raise ValueError(f"cutoff {cutoff!r} is not a date YYYY-MM-DD") from None
    latest = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)
    if cut > latest:  # the contract holds a delivery cut off in the future: generating one said nothing
        raise ValueError(f"cutoff {cut} is in the future: a delivery's cut-off is at most the day after today ({latest})")
    span = (cut - dt.timedelta(days=20) - STUDY_START).days
    if span < 10:
        raise ValueError(f"cutoff {cut} must be at least 30 days after the study start {STUDY_START}")
    blocks = random.Random(f"{seed}:{study}:randomisation")
    arms: list[tuple[str, str]] = []
    while len(arms) < participants:
        arms += blocks.sample(ARMS, 2)
    site_ids = [f"{k:03d}" for k in range(1, sites + 1)]
    subjects: dict[str, list[_Subject]] = {sid: [] for sid in site_ids}
    dying = set(random.Random(f"{seed}:{study}:deaths").sample(range(participants), deaths))
    for i in range(participants):
        rng = random.Random(f"{seed}:{study}:{i}")
        sid = site_ids[(i // 2) % sites]  # whole blocks per site: each site balanced too
        s = _Subject(study, sid, len(subjects[sid]) + 1, arms[i], cut)
        screen = STUDY_START + dt.timedelta(days=(span * i) // participants + rng.randrange(max(1, span // participants)))
        _simulate(rng, s, min(screen, STUDY_START + dt.timedelta(days=span)))
        if i in dying:
            _die(random.Random(f"{seed}:{study}:{i}:death"), s)
        subjects[sid].append(s)
    out_dir = Path(out_dir)
    folders = []
    for k, sid in enumerate(site_ids, start=1):
        did = (delivery_id if sites == 1 else f"{delivery_id}-{sid}") if delivery_id else \
            f"{study}-{sid}-{cut.strftime('%Y%m%d')}"
        folder = out_dir / did
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "sites.csv").write_bytes(_csv_bytes("sites", [_site_row(study, sid, k, len(subjects[sid]))]))
        for domain in contract.DOMAINS:
            rows = []
            for s in sorted(subjects[sid], key=lambda x: x.usubjid):
                mine = s.rows[domain]
                if domain not in ("dm", "sv"):  # SDTM: DM and SV are keyed without --SEQ
                    date_key = f"{domain.upper()}{'STDTC' if domain in ('ds', 'ex', 'ae') else 'DTC'}"
                    mine = sorted(mine, key=lambda r: (r[date_key], r.get("VSTESTCD") or r.get("QSTESTCD") or r.get("AEDECOD") or ""))
                    for n, r in enumerate(mine, start=1):
                        r[f"{domain.upper()}SEQ"] = str(n)
                rows += mine
            (folder / f"{domain}.csv").write_bytes(_csv_bytes(domain, rows))
        meta = {"contract_version": contract.CONTRACT_VERSION, "delivery_id": did, "nct_id": study, "site_id": sid,
                "cutoff_date": cut.isoformat(), "generator": f"trialhouse.synth_site seed={seed} (synthetic data)"}
        write_manifest(folder, meta, list(contract.FILE_NAMES))
        folders.append(folder)
    return sorted(folders)


# ------------------------------------------------------------------ planting violations
def _read(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="", encoding="utf-8") as fh:
        r = csv.DictReader(fh)
        return list(r.fieldnames or []), list(r)


def _write(path: Path, cols: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8"))


def plant(delivery_dir: Path, violation: str) -> str:
    """Break one rule in a generated delivery and say where. Data violations keep the manifest
    consistent (checksums recomputed), so only the rule under test fails."""
    folder = Path(delivery_dir)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    names = [f["name"] for f in manifest["files"]]
    if violation == "checksum_mismatch":
        entry = next(f for f in manifest["files"] if f["name"] == "dm.csv")
        entry["sha256"] = hashlib.sha256(b"not the file").hexdigest()
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return "dm.csv: manifest sha256 does not match the file"
    if violation == "missing_file":
        (folder / "ae.csv").unlink()
        return "ae.csv: listed in the manifest, removed from the folder"
    file = {"dose_above_rule": "ex", "age_70": "dm", "bmi_43": "vs", "ex_subject_not_in_dm": "ex",
            "arm_not_in_registry": "dm", "missing_column": "ds", "bad_date": "dm", "unknown_code": "ae",
            "implausible_date": "ae", "ae_end_before_start": "ae", "negative_dose": "ex", "death_without_date": "dm",
            "data_after_death": "dm"}.get(violation)
    if file is None:
        raise ValueError(f"unknown violation {violation!r}; expected one of {', '.join(VIOLATIONS)}")
    path = folder / f"{file}.csv"
    cols, rows = _read(path)
    if not rows:
        raise ValueError(f"{path}: no rows to plant {violation} in")
    if violation == "negative_dose":  # a placebo row: its dose has no protocol rule that would fail too
        r = next((x for x in rows if x.get("EXTRT") != "KETAMINE"), rows[0])
    else:
        r = next((x for x in rows if x.get("EXTRT") == "KETAMINE"), rows[0]) if file == "ex" else rows[0]
    subject = r.get("USUBJID", "")
    if violation == "dose_above_rule":
        r["EXDOSE"] = "95.0"  # above 0.5 mg/kg for anyone under 190 kg, and above the 50 mg cap
        what = f"ex.csv {subject} EXSEQ {r['EXSEQ']}: EXDOSE 95.0 mg"
    elif violation == "age_70":
        r["AGE"], r["BRTHDTC"] = "70", f"{int(r['RFICDTC'][:4]) - 71:04d}-01"
        what = f"dm.csv {subject}: AGE 70"
    elif violation == "bmi_43":
        height = float(next(x["VSSTRESN"] for x in rows if x["USUBJID"] == subject and x["VSTESTCD"] == "HEIGHT"))
        for x in rows:
            if x["USUBJID"] == subject and x["VISIT"] == "SCREENING" and x["VSTESTCD"] in ("WEIGHT", "BMI"):
                value = 43.0 if x["VSTESTCD"] == "BMI" else 43.0 * (height / 100) ** 2
                x["VSORRES"] = x["VSSTRESC"] = x["VSSTRESN"] = f"{value:.1f}"
        what = f"vs.csv {subject}: screening BMI 43.0"
    elif violation == "ex_subject_not_in_dm":
        ghost = dict(r, USUBJID=f"{subject.rsplit('-', 1)[0]}-9999", EXSEQ="1")
        rows.append(ghost)
        what = f"ex.csv {ghost['USUBJID']}: not in dm.csv"
    elif violation == "arm_not_in_registry":
        r.update(ARMCD="XYZ", ARM="Unregistered Arm", ACTARMCD="XYZ", ACTARM="Unregistered Arm")
        what = f"dm.csv {subject}: ARMCD XYZ"
    elif violation == "missing_column":
        cols = [c for c in cols if c != "USUBJID"]
        what = "ds.csv: column USUBJID removed"
    elif violation == "bad_date":
        r["RFICDTC"] = "2025-02-30"
        what = f"dm.csv row 1 {subject}: RFICDTC 2025-02-30"
    elif violation == "implausible_date":  # a real date, of the right form, before any OMOP event may be
        r["AESTDTC"] = "1900-01-01"
        what = f"ae.csv row 1 {subject}: AESTDTC 1900-01-01"
    elif violation == "ae_end_before_start":
        r["AEENDTC"] = (dt.date.fromisoformat(r["AESTDTC"][:10]) - dt.timedelta(days=1)).isoformat()
        what = f"ae.csv row 1 {subject}: AEENDTC {r['AEENDTC']} before AESTDTC {r['AESTDTC']}"
    elif violation == "negative_dose":
        r["EXDOSE"] = "-1"
        what = f"ex.csv {subject} EXSEQ {r['EXSEQ']}: EXDOSE -1"
    elif violation in ("death_without_date", "data_after_death"):
        cols += [c for c in ("DTHDTC", "DTHFL") if c not in cols]
        r["DTHFL"] = "Y"
        if violation == "data_after_death":  # died the day of consent: every later visit is after it
            r["DTHDTC"] = r["RFICDTC"]
        what = f"dm.csv {subject}: DTHFL Y" + (f", DTHDTC {r['DTHDTC']}" if r.get("DTHDTC") else ", no date of death")
    else:
        r["AESEV"] = "EXTREME"
        what = f"ae.csv row 1 {subject}: AESEV EXTREME"
    _write(path, cols, rows)
    write_manifest(folder, manifest, names)
    return what


# ------------------------------------------------------------------ command line
def _run(args) -> int:
    try:
        folders = generate_delivery(Path(args.out), study=args.study, participants=args.participants, sites=args.sites,
                                    seed=args.seed, delivery_id=args.delivery_id, cutoff=args.cutoff, deaths=args.deaths)
    except ValueError as exc:  # arguments the generator cannot follow: said as such, not a traceback
        print(f"synth-site: {exc}; nothing was written", file=sys.stderr)
        return 2
    planted = [plant(folders[0], v) for v in args.plant or []]
    print(json.dumps({"deliveries": [str(f) for f in folders], "planted": planted}))
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `synth-site` on the `trialhouse` command's subparsers."""
    p = subparsers.add_parser("synth-site", help="write seeded synthetic site deliveries (no real participant data)")
    # Only the seed study: its protocol (arms, doses, visits, questionnaires) is what the generator follows,
    # and another study's deliveries would carry that protocol's arms.
    p.add_argument("--study", default=SEED_STUDY, choices=[SEED_STUDY],
                   help=f"NCT id: {SEED_STUDY}, whose protocol the generator follows")
    p.add_argument("--participants", type=int, required=True, help="randomised participants, all sites together")
    p.add_argument("--sites", type=int, default=1, help="sites, one delivery folder each (site 001 is the registry's)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same arguments, same bytes")
    p.add_argument("--out", required=True, help="folder to write <delivery_id>/ folders into, e.g. <landing>/sites")
    p.add_argument("--delivery-id", help="delivery id (suffixed with -<site> when --sites > 1)")
    p.add_argument("--cutoff", help=f"data cut-off date YYYY-MM-DD (default {DEFAULT_CUTOFF})")
    p.add_argument("--deaths", type=int, default=0, help="participants who die after their last visit (drawn by the seed)")
    p.add_argument("--plant", action="append", choices=VIOLATIONS, help="break a rule in the first delivery (repeatable)")
    p.set_defaults(func=_run)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trialhouse")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["synth-site", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
