"""The death rule (transforms/sites/death.py): which rows say a participant died, which date counts, and
which data lie after it. Its SQL twin is tested in tests/transforms/omop/participants/test_death.py."""
from transforms.sites.death import after, dates_after, death_dates_before, death_of


def test_any_of_the_three_places_says_died_and_dm_gives_the_date_first():
    dm = {"DTHFL": "Y", "DTHDTC": "2025-05-02"}
    ds = [{"DSDECOD": "COMPLETED", "DSSTDTC": "2025-04-01"}, {"DSDECOD": "DEATH", "DSSTDTC": "2025-05-03"}]
    ae = [{"AEOUT": "FATAL", "AEENDTC": "2025-05-04"}, {"AEOUT": "RECOVERED/RESOLVED", "AEENDTC": "2025-03-01"}]
    d = death_of({"DM": [dm], "DS": ds, "AE": ae})
    assert (d.dtc, d.field, d.signal) == ("2025-05-02", "dm.DTHDTC", "dm.DTHFL = 'Y'")
    d = death_of({"DM": [{"DTHFL": "Y"}], "DS": ds, "AE": ae})
    assert (d.dtc, d.field) == ("2025-05-03", "ds.DSSTDTC")
    d = death_of({"DM": [{}], "DS": ds[:1], "AE": ae + [{"AEOUT": "fatal", "AEENDTC": "2025-04"}]})
    assert (d.dtc, d.field, d.signal) == ("2025-04", "ae.AEENDTC", "ae.AEOUT = 'FATAL'")
    d = death_of({"DM": [{"DTHFL": "Y", "DTHDTC": " "}], "AE": [{"AEOUT": "FATAL"}]})
    assert (d.dtc, d.field, d.signal) == (None, "dm.DTHFL", "dm.DTHFL = 'Y'")
    assert death_of({"DM": [{"DTHDTC": "2025"}]}).signal == "dm.DTHDTC = '2025'"
    assert death_of({"DM": [{"DTHFL": ""}], "DS": ds[:1], "AE": ae[1:]}) is None


def test_after_compares_at_the_precision_both_dates_have():
    assert not after("2025-03", "2025-03-07") and not after("2025-03-07T10:00", "2025-03-07")
    assert after("2025-03-08", "2025-03") is False and after("2025-04-01", "2025-03") is True
    assert after("2025-03-07T10:00", "2025-03-07T09:59") and not after("2025-03-06T23:00", "2025-03-07")
    rows = {"DM": [{"BRTHDTC": "2030", "DTHDTC": "2025-03-07", "RFICDTC": "2025-01-02", "RFENDTC": "2025-03-09"}],
            "SV": [{"SVSTDTC": "2025-03-07T08:00", "SVENDTC": "2025-03-08"}]}
    assert [(d, n, v) for d, _, n, v in dates_after(rows, "2025-03-07")] == [("DM", "RFENDTC", "2025-03-09"),
                                                                              ("SV", "SVENDTC", "2025-03-08")]


def test_the_date_is_taken_at_the_most_precise_any_source_gives_it():
    """DM's month with DS's day in it died on that day; the month alone let data of the next day pass
    the gate and put OMOP's date on the last data day. A date that disagrees does not move the choice."""
    ds = [{"DSDECOD": "DEATH", "DSSTDTC": "2026-02-03"}]
    ae = [{"AEOUT": "FATAL", "AEENDTC": "2026-02-03T14:30"}]
    d = death_of({"DM": [{"DTHFL": "Y", "DTHDTC": "2026-02"}], "DS": ds})
    assert (d.dtc, d.field, d.signal) == ("2026-02-03", "ds.DSSTDTC", "dm.DTHFL = 'Y'")
    d = death_of({"DM": [{"DTHDTC": "2026-02"}], "DS": ds, "AE": ae})
    assert (d.dtc, d.field) == ("2026-02-03T14:30", "ae.AEENDTC")
    # two DS rows, the month and a day in it: the earliest is the month as text, the day is the date
    two = [{"DSDECOD": "DEATH", "DSSTDTC": "2026-04"}, {"DSDECOD": "DEATH", "DSSTDTC": "2026-04-18"}]
    assert death_of({"DM": [{}], "DS": two}).dtc == "2026-04-18"
    # equally precise: the earliest; not within the chosen date: no refinement
    assert death_of({"DM": [{"DTHDTC": "2026"}], "DS": [{"DSDECOD": "DEATH", "DSSTDTC": "2026-05-02"},
                                                      {"DSDECOD": "DEATH", "DSSTDTC": "2026-03-09"}]}).dtc == "2026-03-09"
    assert death_of({"DM": [{"DTHDTC": "2026-02-05"}], "DS": ds, "AE": ae}).dtc == "2026-02-05"
    rows = {"DM": [{"DTHDTC": "2026-02"}], "DS": ds, "SV": [{"SVSTDTC": "2026-02-04"}]}
    assert [v for _, _, _, v in dates_after(rows, death_of(rows).dtc)] == ["2026-02-04"]


def test_death_records_dating_it_before_the_date_taken_are_found_and_those_within_it_agree():
    """The gate's warning plausibility.death_dates_agree: DM's 2026-02-05 is taken over a DS DEATH and a
    fatal AE of the 3rd; a month or a time within the date taken agrees, a later date is dates_after's."""
    rows = {"DM": [{"DTHFL": "Y", "DTHDTC": "2026-02-05"}],
            "DS": [{"DSDECOD": "DEATH", "DSSTDTC": "2026-02-03"}, {"DSDECOD": "COMPLETED", "DSSTDTC": "2026-01-01"},
                   {"DSDECOD": "DEATH", "DSSTDTC": "2026-02"}],
            "AE": [{"AEOUT": "FATAL", "AEENDTC": "2026-02-03T14:30"}, {"AEOUT": "FATAL", "AEENDTC": "2026-02-05T08:00"},
                   {"AEOUT": "FATAL", "AEENDTC": "2026-02-06"}, {"AEOUT": "RECOVERED/RESOLVED", "AEENDTC": "2025-12-01"}]}
    death = death_of(rows)
    assert death.dtc == "2026-02-05T08:00"  # refined by the fatal AE within it
    assert [(d, n, v) for d, _, n, v in death_dates_before(rows, death.dtc)] == [
        ("DS", "DSSTDTC", "2026-02-03"), ("AE", "AEENDTC", "2026-02-03T14:30")]
    assert death_dates_before({"DM": [{"DTHDTC": "2026-02-05"}]}, "2026-02-05") == []
