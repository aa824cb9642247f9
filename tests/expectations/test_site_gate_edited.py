"""Suite site_protocol over generated (synthetic) deliveries edited the way real ones go wrong, each case
found by an adversarial review: a crash, a publish DQD blocked, or data published that the gate let by."""
import json

import pytest

from expectations.runtime import GxRunner
from expectations.site_gate import stage_site_data
from tests.expectations.test_site_gate import DELIVERY, RECORD, map_valid, quarantined
from transforms.sites.ingest import ingest_site_deliveries
from trialhouse.synth_site import generate_delivery, write_manifest


@pytest.fixture(scope="module")
def runner():
    return GxRunner()


def deliver(con, landing, participants=4, keep=None, **edits):
    """A generated delivery whose CSVs are edited (`edits`: file name -> edit(head, rows), rows as lists of
    cells, changed in place) or cut to the files in `keep`, its manifest rewritten, then ingested."""
    (folder,) = generate_delivery(landing.root / "sites", participants=participants, sites=1, seed=7)
    meta = json.loads((folder / "manifest.json").read_text())
    names = [f["name"] for f in meta["files"] if keep is None or f["name"] in keep]
    for f in meta["files"]:
        if f["name"] not in names:
            (folder / f["name"]).unlink()
    for name, edit in edits.items():
        lines = (folder / name).read_text().splitlines()
        head, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
        edit(head, rows)
        (folder / name).write_text("\n".join(",".join(cells) for cells in [head, *rows]) + "\n")
    write_manifest(folder, meta, names)
    ingest_site_deliveries(con, landing.root, run_id="t")


def first(head, rows, **where):
    """The first row whose columns hold the given values."""
    return next(r for r in rows if all(r[head.index(c)] == v for c, v in where.items()))


def root_reasons(con, rule):
    """The reasons of a rule's own rows, not of the rows held with their participant."""
    return [r[5] for r in quarantined(con) if r[0] == rule and " held with participant " not in r[5]]


def test_a_delivery_of_dm_alone_is_gated_without_its_screening_frames(con, landing, runner):
    """The contract's minimum delivery (dm.csv alone) has no screening row: the protocol's screening rules
    found no frame, and the site step crashed with a KeyError, failing the registry's publish with it."""
    deliver(con, landing, participants=6, keep={"dm.csv"})
    res = stage_site_data(con, runner, "r1", RECORD)
    assert res.quarantined == 0 and res.staged == res.rows == 6
    ran = dict(con.execute("SELECT rule, failed FROM quarantine.rule_result WHERE suite = 'site_protocol' "
                           "AND rule LIKE 'protocol.screening%'").fetchall())
    assert ran == {"protocol.screening_phq9_min": 0, "protocol.screening_bmi_max": 0}


def test_an_end_time_less_precise_than_its_start_maps_to_no_earlier_than_the_start(con, landing, runner):
    """SVSTDTC 09:45:30 and SVENDTC 09:45 agree at the precision both have, so the gate passes them; the
    mapping read the end as 09:45:00, a visit ending before it started, and DQD's plausibleStartBeforeEnd
    blocked every publish. Likewise an AE's end (an exposure's too, by the same macro: an infusion ending
    in its start's minute is held by the protocol's duration rule before it maps)."""
    def in_the_start_minute(st, en):
        def edit(head, rows):
            i, j = head.index(st), head.index(en)
            cells = next(r for r in rows if len(r[i]) == 16 and r[j][:16] >= r[i])  # a time to the minute
            cells[i], cells[j] = cells[i] + ":30", cells[i]
        return edit

    deliver(con, landing, **{"sv.csv": in_the_start_minute("SVSTDTC", "SVENDTC"),
                             "ae.csv": in_the_start_minute("AESTDTC", "AEENDTC")})
    res = stage_site_data(con, runner, "r1", RECORD)
    assert res.quarantined == 0
    map_valid(con)
    for table, prefix in (("visit_occurrence", "visit"), ("condition_occurrence", "condition")):
        bad, same = con.execute(
            f"SELECT count(*) FILTER ({prefix}_end_datetime < {prefix}_start_datetime), "
            f"count(*) FILTER ({prefix}_end_datetime = {prefix}_start_datetime AND second({prefix}_start_datetime) = 30) "
            f"FROM stage_omop.{table}").fetchone()
        assert (bad, same) == (0, 1), table


@pytest.mark.parametrize("brthdtc, age, rule", [
    ("", "190", "plausibility.birth_year"),  # a typo: born 1835, which DQD's plausibleValueLow (1850) refuses
    ("2026-11", "25", "plausibility.born_before_consent"),
    ("1940-08", "25", "plausibility.age_agrees_with_birth"),  # published as 85 where AGE passed the registry's 18-65
])
def test_a_birth_published_as_omop_and_fhir_give_it_is_checked(con, landing, runner, brthdtc, age, rule):
    """The gate checked AGE; OMOP's year_of_birth and FHIR's birthDate come from BRTHDTC, else consent year
    minus AGE. An AGE of 190 for a study with no maximum age passed and blocked every publish at DQD; a
    BRTHDTC of 1940 or after consent beside an eligible AGE was published."""
    held = []

    def edit(head, rows):
        rows[0][head.index("BRTHDTC")], rows[0][head.index("AGE")] = brthdtc, age
        held.append(rows[0][head.index("USUBJID")])

    deliver(con, landing, **{"dm.csv": edit})
    res = stage_site_data(con, runner, "r1", RECORD)
    assert res.participants_held == [f"{DELIVERY}/{held[0]}"]
    reasons = root_reasons(con, rule)
    assert len(reasons) == 1 and held[0] in reasons[0] and f"(rule {rule})" in reasons[0], quarantined(con)


def test_a_dose_in_another_unit_than_the_protocol_rule_is_held(con, landing, runner):
    """The dose rule compared EXDOSE alone: 43 g of ketamine passed as 43 mg and was published so."""
    def edit(head, rows):
        first(head, rows, EXTRT="KETAMINE")[head.index("EXDOSU")] = "g"

    deliver(con, landing, **{"ex.csv": edit})
    res = stage_site_data(con, runner, "r1", RECORD)
    assert res.participants_held == [] and len(res.rows_held) == 1  # the row, as the dose rule holds one
    (reason,) = root_reasons(con, "protocol.dose_unit")
    assert "ex.EXDOSU = 'g' is not the unit of the protocol's dose rule" in reason


def test_a_disposition_before_consent_holds_its_participant(con, landing, runner):
    """DS dated 2024-04-11 for a participant consented 2025-05-10: FHIR's ResearchSubject.period ran from
    the consent back to it (end before start, which R5's per-1 forbids) and nothing held it."""
    held = []

    def edit(head, rows):
        rows[0][head.index("DSSTDTC")] = "2024-04-11"
        held.append(rows[0][head.index("USUBJID")])

    deliver(con, landing, **{"ds.csv": edit})
    res = stage_site_data(con, runner, "r1", RECORD)
    assert res.participants_held == [f"{DELIVERY}/{held[0]}"]
    (reason,) = root_reasons(con, "plausibility.ds_before_consent")
    assert "ds.DSSTDTC = '2024-04-11' dates a disposition before the participant's informed consent" in reason


@pytest.mark.parametrize("blank", [("EPOCH",), ("EPOCH", "VISIT")])
def test_a_screening_value_without_epoch_is_still_checked(con, landing, runner, blank):
    """EPOCH is optional in vs.csv and qs.csv: screening rows without it went unchecked, and a screening
    BMI of 45 was published. Then VISIT says it; without both, a row dated before the first dose."""
    held = []

    def edit(head, rows):
        cells = first(head, rows, VSTESTCD="BMI", EPOCH="SCREENING")
        cells[head.index("VSSTRESN")] = "45"
        for column in blank:
            cells[head.index(column)] = ""
        held.append(cells[head.index("USUBJID")])

    deliver(con, landing, **{"vs.csv": edit})
    res = stage_site_data(con, runner, "r1", RECORD)
    assert res.participants_held == [f"{DELIVERY}/{held[0]}"]
    assert [r for r in quarantined(con) if r[0] == "protocol.screening_bmi_max" and "45" in r[5]]
