"""The synthetic site generator: byte-for-byte determinism, the seed study's protocol, the contract."""
import csv
import datetime as dt
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from schemas.sites import contract
from tests.conftest import CTGOV
from transforms.sites.check import check_csv, check_manifest
from trialhouse.synth_site import VIOLATIONS, generate_delivery, ketamine_dose, main, plant


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def read(folder: Path, kind: str) -> list[dict]:
    with (folder / f"{kind}.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def all_rows(folders, kind):
    return [r for f in folders for r in read(f, kind)]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return generate_delivery(out, participants=60, sites=3, seed=11)


def test_same_arguments_same_bytes_and_another_seed_differs(tmp_path):
    a = generate_delivery(tmp_path / "a", participants=12, sites=2, seed=5)
    b = generate_delivery(tmp_path / "b", participants=12, sites=2, seed=5)
    c = generate_delivery(tmp_path / "c", participants=12, sites=2, seed=6)
    assert [p.name for p in a] == [p.name for p in b] == sorted(p.name for p in a)
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    assert snapshot(tmp_path / "a") != snapshot(tmp_path / "c")
    assert set(snapshot(tmp_path / "a")) == set(snapshot(tmp_path / "c"))  # same files, other values


def test_one_folder_per_site_with_manifest_roster_and_seven_domains(study):
    assert [f.name for f in study] == [f"NCT06668571-{s}-20260630" for s in ("001", "002", "003")]
    for f in study:
        assert sorted(p.name for p in f.iterdir()) == sorted(["manifest.json", *contract.FILE_NAMES])


def test_generated_files_keep_the_contract(study):
    for folder in study:
        manifest, problems = check_manifest((folder / "manifest.json").read_bytes(), folder.name)
        assert problems == []
        for kind in contract.CSV_KINDS:
            parsed, problems = check_csv(folder / f"{kind}.csv", kind, manifest)
            assert problems == [], problems[:3]
            assert parsed.columns == contract.columns(kind)


def test_eligibility_age_phq9_bmi(study):
    dm = all_rows(study, "dm")
    assert len(dm) == 60 and len({r["USUBJID"] for r in dm}) == 60
    for r in dm:
        assert 18 <= int(r["AGE"]) <= 65
        consent, birth = dt.date.fromisoformat(r["RFICDTC"]), r["BRTHDTC"]
        assert len(birth) == 7 and int(r["AGE"]) in (consent.year - int(birth[:4]), consent.year - int(birth[:4]) - 1)
    screening_phq = {r["USUBJID"]: int(r["QSSTRESN"]) for r in all_rows(study, "qs")
                     if r["QSTESTCD"] == "PHQ9TOT" and r["VISIT"] == "SCREENING"}
    assert set(screening_phq) == {r["USUBJID"] for r in dm}
    assert min(screening_phq.values()) >= 15
    bmi = {r["USUBJID"]: float(r["VSSTRESN"]) for r in all_rows(study, "vs")
           if r["VSTESTCD"] == "BMI" and r["VISIT"] == "SCREENING"}
    assert set(bmi) == set(screening_phq) and max(bmi.values()) <= 40


def test_phq9_total_is_the_sum_of_its_items(study):
    totals, items = {}, Counter()
    for r in all_rows(study, "qs"):
        key = (r["USUBJID"], r["VISITNUM"])
        if r["QSTESTCD"] == "PHQ9TOT":
            totals[key] = int(r["QSSTRESN"])
        else:
            assert 0 <= int(r["QSSTRESN"]) <= 3
            items[key] += int(r["QSSTRESN"])
    assert totals == dict(items)


def test_arms_are_the_registry_arms_one_to_one(study):
    labels = {g["label"] for g in json.loads((CTGOV / "NCT06668571.json").read_text())
              ["protocolSection"]["armsInterventionsModule"]["armGroups"]}
    dm = all_rows(study, "dm")
    assert {r["ARM"] for r in dm} == labels == {r["ACTARM"] for r in dm}
    assert {(r["ARMCD"], r["ARM"]) for r in dm} == {("KET", "Ketamine Group"), ("PBO", "Normal Saline/Placebo Group")}
    arms = Counter(r["ARMCD"] for r in dm)
    assert abs(arms["KET"] - arms["PBO"]) <= 1
    for folder in study:  # randomised in whole blocks per site
        site = Counter(r["ARMCD"] for r in read(folder, "dm"))
        assert abs(site["KET"] - site["PBO"]) <= 1


def test_dose_rule_and_forty_minute_infusions(study):
    arm = {r["USUBJID"]: r["ARMCD"] for r in all_rows(study, "dm")}
    weight = {(r["USUBJID"], r["VISITNUM"]): float(r["VSSTRESN"]) for r in all_rows(study, "vs")
              if r["VSTESTCD"] == "WEIGHT" and r["VSTPT"] == "PRE-DOSE"}
    ex = all_rows(study, "ex")
    capped = 0
    for r in ex:
        start, end = (dt.datetime.fromisoformat(r[c]) for c in ("EXSTDTC", "EXENDTC"))
        assert end - start == dt.timedelta(minutes=40)
        assert r["EXROUTE"] == "INTRAVENOUS" and r["EXDOSU"] == "mg"
        if r["VISIT"] == "INFUSION":
            assert r["EXTRT"] == ("KETAMINE" if arm[r["USUBJID"]] == "KET" else "PLACEBO")
        else:
            assert r["VISIT"] == "OPEN-LABEL INFUSION" and r["EXTRT"] == "KETAMINE"
        if r["EXTRT"] == "KETAMINE":
            w = weight[(r["USUBJID"], r["VISITNUM"])]
            assert abs(float(r["EXDOSE"]) - min(0.5 * w, 50.0)) <= 0.05 + 1e-9
            capped += w > 100
        else:
            assert float(r["EXDOSE"]) == 0
    assert capped > 0  # the 50 mg cap is exercised
    assert ketamine_dose(120) == 50.0 and ketamine_dose(80) == 40.0


def test_visits_disposition_and_open_label(study):
    visits: dict[str, list[str]] = {}
    for r in all_rows(study, "sv"):
        visits.setdefault(r["USUBJID"], []).append(r["VISIT"])
    ds = {r["USUBJID"]: r["DSDECOD"] for r in all_rows(study, "ds")}
    for subject, names in visits.items():
        assert names[:2] == ["SCREENING", "INFUSION"]
        if ds.get(subject) == "COMPLETED":
            assert {"DAY 1", "DAY 7"} <= set(names)
    decods = Counter(ds.values())
    assert decods["COMPLETED"] > 0 and decods["COMPLETED"] < len(visits)
    assert set(decods) - {"COMPLETED"} <= {"WITHDRAWAL BY SUBJECT", "LOST TO FOLLOW-UP", "PHYSICIAN DECISION"}
    open_label = [s for s, names in visits.items() if "OPEN-LABEL INFUSION" in names]
    assert 0 < len(open_label) < len(visits)


def test_ketamine_improves_more_at_day_1_and_has_more_adverse_events(study):
    arm = {r["USUBJID"]: r["ARMCD"] for r in all_rows(study, "dm")}
    phq = {(r["USUBJID"], r["VISIT"]): int(r["QSSTRESN"]) for r in all_rows(study, "qs") if r["QSTESTCD"] == "PHQ9TOT"}
    drop = {"KET": [], "PBO": []}
    for (subject, visit), score in phq.items():
        if visit == "DAY 1":
            drop[arm[subject]].append(phq[(subject, "INFUSION")] - score)
    assert sum(drop["KET"]) / len(drop["KET"]) > sum(drop["PBO"]) / len(drop["PBO"]) + 2
    blinded = Counter(arm[r["USUBJID"]] for r in all_rows(study, "ae") if r["EPOCH"] == "TREATMENT")
    assert blinded["KET"] > 2 * blinded["PBO"]
    terms = {r["AEDECOD"] for r in all_rows(study, "ae")}
    assert {"DISSOCIATION", "NAUSEA", "HEADACHE"} <= terms


def test_first_site_is_the_registry_site_others_are_fictional(study):
    first = read(study[0], "sites")[0]
    assert (first["facility"], first["city"], first["state"], first["country"]) == \
        ("Mayo Clinic in Rochester", "Rochester", "Minnesota", "United States")
    assert (first["latitude"], first["longitude"]) == ("44.02163", "-92.4699")
    others = [read(f, "sites")[0] for f in study[1:]]
    assert all(o["facility"].startswith("Synthetic Site") and o["city"].startswith("Fictional") for o in others)
    assert all(r["principal_investigator"].startswith("Synthetic Investigator") for r in [first, *others])


def test_cutoff_leaves_late_participants_ongoing(tmp_path):
    (folder,) = generate_delivery(tmp_path, participants=20, sites=1, seed=2, cutoff="2025-06-01", delivery_id="early")
    assert folder.name == "early"
    cut = "2025-06-01"
    for kind, col in (("sv", "SVSTDTC"), ("ex", "EXSTDTC"), ("vs", "VSDTC"), ("qs", "QSDTC"), ("ds", "DSSTDTC")):
        assert all(r[col][:10] <= cut for r in read(folder, kind)), kind
    with pytest.raises(ValueError):
        generate_delivery(tmp_path, participants=2, sites=1, seed=1, cutoff="2025-03-01")
    # a cut-off in the future is one the contract holds: refused here, not generated and held later
    with pytest.raises(ValueError, match="is in the future"):
        generate_delivery(tmp_path, participants=2, sites=1, seed=1, cutoff="2030-01-01")


@pytest.mark.parametrize("violation", [v for v in VIOLATIONS if v not in ("checksum_mismatch", "missing_file")])
def test_planted_data_violations_keep_the_manifest_true(tmp_path, violation):
    (folder,) = generate_delivery(tmp_path, participants=6, sites=1, seed=3)
    where = plant(folder, violation)
    assert where
    manifest, problems = check_manifest((folder / "manifest.json").read_bytes(), folder.name)
    assert problems == []
    for f in manifest["files"]:
        assert hashlib.sha256((folder / f["name"]).read_bytes()).hexdigest() == f["sha256"]


def test_planted_values(tmp_path):
    (folder,) = generate_delivery(tmp_path, participants=6, sites=1, seed=3)
    for v in ("dose_above_rule", "age_70", "bmi_43", "ex_subject_not_in_dm", "arm_not_in_registry"):
        plant(folder, v)
    dm, ex, vs = read(folder, "dm"), read(folder, "ex"), read(folder, "vs")
    assert dm[0]["AGE"] == "70" and dm[0]["ARMCD"] == "XYZ"
    assert any(r["EXDOSE"] == "95.0" for r in ex)
    assert {r["USUBJID"] for r in ex} - {r["USUBJID"] for r in dm}
    assert any(r["VSTESTCD"] == "BMI" and r["VISIT"] == "SCREENING" and r["VSSTRESN"] == "43.0" for r in vs)
    with pytest.raises(ValueError):
        plant(folder, "no_such_violation")


def test_command_line(tmp_path, capsys):
    assert main(["--participants", "4", "--sites", "2", "--seed", "1", "--out", str(tmp_path), "--plant", "age_70"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["deliveries"]) == 2 and out["planted"][0].startswith("dm.csv")
    assert all(Path(d, "manifest.json").is_file() for d in out["deliveries"])


def test_deaths_come_after_the_last_data_in_dm_ds_and_a_fatal_ae_and_change_no_one_else(tmp_path):
    base = generate_delivery(tmp_path / "a", participants=12, sites=2, seed=5)
    died = generate_delivery(tmp_path / "b", participants=12, sites=2, seed=5, deaths=3)
    assert generate_delivery(tmp_path / "c", participants=12, sites=2, seed=5, deaths=3) and \
        snapshot(tmp_path / "b") == snapshot(tmp_path / "c")
    for folder in died:
        manifest, problems = check_manifest((folder / "manifest.json").read_bytes(), folder.name)
        assert problems == [] and all(check_csv(folder / f"{k}.csv", k, manifest)[1] == [] for k in contract.CSV_KINDS)
    dm = {r["USUBJID"]: r for r in all_rows(died, "dm")}
    dead = {u: r["DTHDTC"] for u, r in dm.items() if r["DTHFL"] == "Y"}
    assert len(dead) == 3 and all(r["DTHDTC"] == "" for u, r in dm.items() if u not in dead)
    for u, day in dead.items():
        assert [r["DSSTDTC"] for r in all_rows(died, "ds") if r["USUBJID"] == u and r["DSDECOD"] == "DEATH"] == [day]
        fatal = [r for r in all_rows(died, "ae") if r["USUBJID"] == u and r["AEOUT"] == "FATAL"]
        assert [(r["AEDECOD"], r["AESER"], r["AEENDTC"]) for r in fatal] == [("MYOCARDIAL INFARCTION", "Y", day)]
        dated = [v[:10] for k in ("sv", "ex", "vs", "qs", "ae", "ds") for r in all_rows(died, k) if r["USUBJID"] == u
                 for c, v in r.items() if c.endswith("DTC") and v]
        assert max(dated) == day <= "2026-06-30"
    # everyone else's rows are as without deaths (the new DM columns aside)
    for kind in ("dm", "sv", "ex", "vs", "qs", "ae", "ds"):
        keep = lambda rows: sorted(json.dumps({k: v for k, v in r.items() if not k.endswith("SEQ") and k not in ("DTHFL", "DTHDTC")},
                                              sort_keys=True) for r in rows if r["USUBJID"] not in dead)  # noqa: E731
        assert keep(all_rows(died, kind)) == keep(all_rows(base, kind)), kind
    with pytest.raises(ValueError):
        generate_delivery(tmp_path / "d", participants=2, sites=1, seed=1, deaths=3)


@pytest.mark.parametrize("args, needle", [
    (["--participants", "-5"], "participants and sites must be at least 1"),
    (["--participants", "2", "--deaths", "3"], "deaths must be from 0 to the 2 participants"),
    (["--participants", "4", "--sites", "0"], "participants and sites must be at least 1"),
    (["--participants", "4", "--cutoff", "notadate"], "cutoff 'notadate' is not a date YYYY-MM-DD"),
])
def test_arguments_the_generator_cannot_follow_are_said_not_a_traceback(tmp_path, capsys, args, needle):
    from trialhouse.cli import main

    assert main(["synth-site", "--out", str(tmp_path / "sites"), *args]) == 2
    assert needle in capsys.readouterr().err and not (tmp_path / "sites").exists()


def test_another_study_is_refused_its_deliveries_would_carry_the_seeds_arms(tmp_path, capsys):
    from trialhouse.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["synth-site", "--out", str(tmp_path), "--participants", "4", "--study", "NCT00184067"])
    assert exit_.value.code == 2 and "invalid choice: 'NCT00184067'" in capsys.readouterr().err
