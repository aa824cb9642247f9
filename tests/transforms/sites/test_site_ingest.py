"""Raw ingestion of site deliveries over generated (synthetic) deliveries."""
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import Counting
from trialhouse.synth_site import generate_delivery, plant, write_manifest
from transforms.sites import ingest
from transforms.sites.ingest import ingest_site_deliveries


@pytest.fixture
def sites(landing) -> Path:
    root = landing.root / "sites"
    root.mkdir(parents=True)
    return root


def deliver(sites: Path, **kw) -> Path:
    args = {"participants": 8, "sites": 1, "seed": 4} | kw
    (folder,) = generate_delivery(sites, **args)
    return folder


def status(con) -> dict[str, str]:
    return dict(con.execute("SELECT delivery_id, status FROM raw.site_delivery ORDER BY delivery_key").fetchall())


def quarantined(con) -> list[tuple]:
    return con.execute("SELECT suite, rule, source_file, record_key, source_record, field, reason "
                       "FROM quarantine.record ORDER BY reason").fetchall()


def test_complete_delivery_loads_with_rows_per_domain(con, landing, sites):
    folder = deliver(sites)
    s = ingest_site_deliveries(con, landing.root, run_id="r1")
    manifest = json.loads((folder / "manifest.json").read_text())
    expected = {f["name"].removesuffix(".csv"): f["rows"] for f in manifest["files"]}
    assert (s.deliveries_seen, s.loaded, s.held, s.superseded) == (1, 1, 0, 0)
    assert s.rows == expected
    got = dict(con.execute("SELECT lower(domain), count(*) FROM raw.sdtm_row GROUP BY ALL").fetchall())
    got["sites"] = con.execute("SELECT count(*) FROM raw.site_roster_row").fetchone()[0]
    assert got == expected
    row = con.execute("SELECT delivery_id, nct_id, site_id, cutoff_date::VARCHAR, content, status, folder, run_id, "
                      "rows_loaded FROM raw.site_delivery").fetchone()
    assert row[:8] == (folder.name, "NCT06668571", "001", "2026-06-30", "participant_data", "loaded",
                       f"sites/{folder.name}", "r1")
    assert json.loads(row[8]) == expected
    assert con.execute("SELECT delivery_id FROM raw.site_delivery_current").fetchall() == [(folder.name,)]
    rec = con.execute("SELECT record FROM raw.sdtm_row WHERE domain = 'DM' AND row_number = 1").fetchone()[0]
    assert json.loads(rec)["USUBJID"] == "NCT06668571-001-0001"  # rows kept as received, all text
    assert quarantined(con) == []


def test_reingest_is_a_noop(con, landing, sites):
    deliver(sites)
    ingest_site_deliveries(con, landing.root)
    tables = ("raw.site_delivery", "raw.sdtm_row", "raw.site_roster_row", "quarantine.record")
    before = [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables]
    again = ingest_site_deliveries(con, landing.root)
    assert (again.unchanged, again.loaded, again.held, again.rows) == (1, 0, 0, {})
    assert [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables] == before


def test_missing_listed_file_holds_the_whole_delivery_until_it_arrives(con, landing, sites, tmp_path):
    folder = deliver(sites)
    keep = tmp_path / "ae.csv"
    shutil.copyfile(folder / "ae.csv", keep)
    plant(folder, "missing_file")
    s = ingest_site_deliveries(con, landing.root, run_id="r1")
    assert (s.loaded, s.held) == (0, 1)
    reason = con.execute("SELECT reason FROM raw.site_delivery").fetchone()[0]
    assert folder.name in reason and "ae.csv" in reason
    assert con.execute("SELECT count(*) FROM raw.sdtm_row").fetchone()[0] == 0  # held whole
    (q,) = quarantined(con)
    assert q[:4] == ("site_contract", "manifest_complete", f"sites/{folder.name}/ae.csv", folder.name)
    assert ingest_site_deliveries(con, landing.root).unchanged == 1  # still incomplete: not decided again
    shutil.copyfile(keep, folder / "ae.csv")  # the copy completes
    s = ingest_site_deliveries(con, landing.root)
    assert (s.loaded, s.held) == (1, 0)
    assert con.execute("SELECT list(status ORDER BY delivery_key) FROM raw.site_delivery").fetchone()[0] == ["held", "loaded"]
    assert con.execute("SELECT count(*) FROM raw.site_delivery_current").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM quarantine.record WHERE released_at IS NULL").fetchone()[0] == 0


def test_checksum_mismatch_holds_the_whole_delivery(con, landing, sites):
    folder = deliver(sites)
    plant(folder, "checksum_mismatch")
    (folder / "notes.txt").write_text("not listed, not read")
    s = ingest_site_deliveries(con, landing.root)
    assert (s.loaded, s.held) == (0, 1)
    assert "dm.csv has sha256" in s.reasons[0] and folder.name in s.reasons[0]
    assert [q[1] for q in quarantined(con)] == ["manifest_checksum"]
    assert con.execute("SELECT count(*) FROM raw.sdtm_row").fetchone()[0] == 0


@pytest.mark.parametrize("violation, file, needle, field", [
    ("missing_column", "ds.csv", "ds.csv header: required column USUBJID is missing", "ds.USUBJID"),
    ("bad_date", "dm.csv", "row 1 (line 2) column RFICDTC: '2025-02-30' is not a valid ISO 8601", "dm.RFICDTC"),
    ("unknown_code", "ae.csv", "row 1 (line 2) column AESEV", "ae.AESEV"),
])
def test_contract_violation_holds_the_delivery_naming_file_row_and_column(con, landing, sites, violation, file, needle, field):
    folder = deliver(sites)
    plant(folder, violation)
    s = ingest_site_deliveries(con, landing.root)
    assert (s.loaded, s.held) == (0, 1)
    reason = con.execute("SELECT reason FROM raw.site_delivery WHERE status = 'held'").fetchone()[0]
    assert reason.startswith(f"delivery {folder.name}: {file}") and needle in reason
    (q,) = quarantined(con)
    assert q[1] == "csv_contract" and q[2] == f"sites/{folder.name}/{file}" and q[5] == field
    assert con.execute("SELECT count(*) FROM raw.sdtm_row").fetchone()[0] == 0


def test_manifest_naming_another_folder_is_held(con, landing, sites):
    folder = deliver(sites)
    moved = folder.rename(sites / "renamed")
    s = ingest_site_deliveries(con, landing.root)
    assert s.held == 1 and "is not the folder name 'renamed'" in s.reasons[0]
    assert quarantined(con)[0][1] == "manifest_contract"
    assert moved.name == "renamed"


def test_unreadable_manifest_is_held_and_folder_without_manifest_waits(con, landing, sites):
    (sites / "broken").mkdir()
    (sites / "broken" / "manifest.json").write_text("{not json")
    (sites / "copying").mkdir()
    (sites / "copying" / "dm.csv").write_text("STUDYID\n")
    s = ingest_site_deliveries(con, landing.root)
    assert (s.held, s.waiting) == (1, ["copying"])
    assert con.execute("SELECT delivery_id, nct_id, status FROM raw.site_delivery").fetchall() == [("broken", None, "held")]


@pytest.mark.parametrize("newer_first", [False, True])
def test_newer_delivery_supersedes_the_older_in_any_order(con, landing, sites, newer_first):
    old = deliver(sites, cutoff="2026-03-31", participants=6)
    new = deliver(sites, cutoff="2026-06-30", participants=8)
    first, second = (new, old) if newer_first else (old, new)
    ingest_site_deliveries(con, landing.root, deliveries=[first.name])
    s = ingest_site_deliveries(con, landing.root, deliveries=[second.name])
    assert s.superseded == 1
    assert status(con) == {old.name: "superseded", new.name: "loaded"}
    assert con.execute("SELECT delivery_id FROM raw.site_delivery_current").fetchall() == [(new.name,)]
    assert con.execute("SELECT count(*) FROM raw.sdtm_row_current WHERE domain = 'DM'").fetchone()[0] == 8
    kept = con.execute("SELECT count(*) FROM raw.sdtm_row r JOIN raw.site_delivery d USING (delivery_key) "
                       "WHERE d.delivery_id = ? AND r.domain = 'DM'", [old.name]).fetchone()[0]
    assert kept == 6  # history kept in raw
    reason = con.execute("SELECT reason FROM raw.site_delivery WHERE delivery_id = ?", [old.name]).fetchone()[0]
    assert new.name in reason


def test_same_cutoff_later_delivery_id_wins(con, landing, sites):
    a = deliver(sites, delivery_id="D-2026-06-a")
    b = deliver(sites, delivery_id="D-2026-06-b", seed=5)
    s = ingest_site_deliveries(con, landing.root)
    assert (s.loaded, s.superseded) == (2, 1)
    assert status(con) == {a.name: "superseded", b.name: "loaded"}


def test_superseded_on_arrival_says_by_what_and_why_on_a_tie(con, landing, sites):
    """A later-arriving delivery with the same cut-off but an earlier id is superseded on arrival: not
    loaded, held or waiting. The run's summary said nothing of it; now each superseding is listed, and a
    tie says the rule that broke it."""
    b = deliver(sites, delivery_id="D-2026-06-b")
    ingest_site_deliveries(con, landing.root)
    a = deliver(sites, delivery_id="D-2026-06-a", seed=5)
    s = ingest_site_deliveries(con, landing.root)
    assert (s.loaded, s.held, s.superseded, s.waiting) == (0, 0, 1, [])
    (why,) = s.superseded_why
    assert why.startswith(f"delivery {a.name}: superseded on arrival by {b.name} (cut-off 2026-06-30, the same")
    assert "the later delivery id is kept" in why
    newer = deliver(sites, delivery_id="D-2026-09", cutoff="2026-09-30", seed=6)
    s = ingest_site_deliveries(con, landing.root)
    assert s.superseded_why == [f"delivery {b.name}: superseded by {newer.name}"]
    assert "the same" not in con.execute("SELECT reason FROM raw.site_delivery WHERE delivery_id = ?",
                                         [b.name]).fetchone()[0]  # a later cut-off needs no tie-break


def test_a_newer_delivery_releases_the_holds_of_those_it_supersedes(con, landing, sites):
    """Holds of a superseded delivery, its participants' (site_protocol) or its own (site_contract), stayed
    in `quarantine list` for good: nothing decides a superseded delivery again. Another site's delivery
    keeps its holds."""
    held = deliver(sites, delivery_id="D-03", cutoff="2026-03-31")
    plant(held, "checksum_mismatch")
    ingest_site_deliveries(con, landing.root)
    assert status(con) == {"D-03": "held"}

    def held_keys():
        return sorted(r[0] for r in con.execute(
            "SELECT DISTINCT record_key FROM quarantine.record WHERE released_at IS NULL").fetchall())

    assert held_keys() == ["D-03"]
    generate_delivery(sites, participants=8, sites=2, seed=7, delivery_id="D-04", cutoff="2026-04-30")
    ingest_site_deliveries(con, landing.root)
    assert status(con) == {"D-03": "held", "D-04-001": "loaded", "D-04-002": "loaded"}  # raw keeps what was decided
    assert held_keys() == []  # D-04-001 supersedes D-03: its hold is moot
    for delivery, usubjid in (("D-04-001", "NCT06668571-001-0001"), ("D-04-002", "NCT06668571-002-0001")):
        con.execute("INSERT INTO quarantine.record (run_id, quarantined_at, source_file, record_key, source_record, "
                    "suite, rule, field, reason) VALUES ('r', now()::TIMESTAMP, ?, ?, 'dm row 1', 'site_protocol', "
                    "'eligibility.age_max', 'dm.AGE', 'too old')", [f"sites/{delivery}/dm.csv", f"{delivery}/{usubjid}"])
    newest = deliver(sites, delivery_id="D-06", cutoff="2026-06-30", seed=9)
    s = ingest_site_deliveries(con, landing.root)
    assert s.superseded_why == [f"delivery D-04-001: superseded by {newest.name}"]
    assert held_keys() == ["D-04-002/NCT06668571-002-0001"]


def test_roster_only_delivery_loads_without_hiding_participant_data(con, landing, sites):
    data = deliver(sites, cutoff="2026-03-31")
    roster = sites / "roster-2026-05"
    roster.mkdir()
    text = (data / "sites.csv").read_text().replace(",RECRUITING,", ",ACTIVE_NOT_RECRUITING,")
    (roster / "sites.csv").write_text(text)
    write_manifest(roster, {"delivery_id": roster.name, "nct_id": "NCT06668571", "site_id": "001",
                            "cutoff_date": "2026-05-15"}, ["sites.csv"])
    s = ingest_site_deliveries(con, landing.root)
    assert (s.loaded, s.held, s.superseded) == (2, 0, 0)
    current = dict(con.execute("SELECT content, delivery_id FROM raw.site_delivery_current").fetchall())
    assert current == {"participant_data": data.name, "roster": roster.name}
    assert con.execute("SELECT delivery_id, status FROM raw.site_roster_current").fetchall() == \
        [(roster.name, "ACTIVE_NOT_RECRUITING")]
    assert con.execute("SELECT count(*) FROM raw.sdtm_row_current WHERE domain = 'DM'").fetchone()[0] == 8


def test_roster_for_another_site_breaks_the_contract(con, landing, sites):
    roster = sites / "roster-x"
    roster.mkdir()
    (roster / "sites.csv").write_text(
        "site_id,nct_id,facility,city,country,status\n002,NCT06668571,Synthetic Site 2,Fictional City 2,United States,RECRUITING\n")
    write_manifest(roster, {"delivery_id": "roster-x", "nct_id": "NCT06668571", "site_id": "001",
                            "cutoff_date": "2026-05-15"}, ["sites.csv"])
    s = ingest_site_deliveries(con, landing.root)
    assert s.held == 1 and "column site_id: '002' is not the manifest's site_id '001'" in s.reasons[0]


def test_protocol_violations_are_not_contract_violations(con, landing, sites):
    folder = deliver(sites)
    for v in ("dose_above_rule", "age_70", "bmi_43", "ex_subject_not_in_dm", "arm_not_in_registry"):
        plant(folder, v)
    s = ingest_site_deliveries(con, landing.root)
    assert (s.loaded, s.held) == (1, 0)  # raw keeps them; the gate judges the protocol


def test_several_sites_in_one_run(con, landing, sites):
    folders = generate_delivery(sites, participants=12, sites=3, seed=9)
    s = ingest_site_deliveries(con, landing.root)
    assert (s.deliveries_seen, s.loaded) == (3, 3)
    assert con.execute("SELECT count(*) FROM raw.site_delivery_current").fetchone()[0] == 3
    assert con.execute("SELECT count(DISTINCT usubjid) FROM raw.sdtm_row_current").fetchone()[0] == 12
    assert len(folders) == 3


def test_a_rescan_costs_the_same_statements_however_many_deliveries_were_decided_before(con, landing, sites):
    """Unchanged deliveries are recognised in one query: a statement per folder made a landing folder
    that keeps its deliveries slower with every delivery."""
    generate_delivery(sites, participants=4, sites=1, seed=1, delivery_id="d1")
    ingest_site_deliveries(con, landing.root)
    one = Counting(con)
    assert ingest_site_deliveries(one, landing.root).unchanged == 1
    generate_delivery(sites, participants=12, sites=6, seed=2, delivery_id="d2")
    ingest_site_deliveries(con, landing.root)
    many = Counting(con)
    again = ingest_site_deliveries(many, landing.root)
    assert (again.deliveries_seen, again.unchanged, again.loaded, again.held) == (7, 7, 0, 0)
    assert len(many.statements) == len(one.statements)


def test_a_listed_file_that_is_a_symbolic_link_holds_the_delivery_and_is_not_read(con, landing, sites, tmp_path):
    """It was followed out of the landing folder and loaded whatever it pointed at (adversarial review)."""
    folder = deliver(sites)
    outside = tmp_path / "elsewhere.csv"
    outside.write_bytes((folder / "dm.csv").read_bytes())
    (folder / "dm.csv").unlink()
    (folder / "dm.csv").symlink_to(outside)
    s = ingest_site_deliveries(con, landing.root, run_id="r1")
    assert (s.loaded, s.held) == (0, 1)
    (reason,) = con.execute("SELECT reason FROM quarantine.record").fetchone()
    assert "dm.csv is a symbolic link" in reason
    assert con.execute("SELECT count(*) FROM raw.sdtm_row").fetchone()[0] == 0


def test_a_folder_restored_to_an_earlier_state_is_decided_again(con, landing, sites, tmp_path):
    """Only states never seen before were decided: a folder put back as it was (a re-sent delivery
    withdrawn) looked unchanged, and the warehouse kept the withdrawn version (adversarial review)."""
    folder = deliver(sites, participants=8)
    shutil.copytree(folder, tmp_path / "as_first_sent")
    ingest_site_deliveries(con, landing.root, run_id="r1")
    shutil.rmtree(folder)
    assert deliver(sites, participants=10) == folder  # re-sent in place, same delivery id
    s = ingest_site_deliveries(con, landing.root, run_id="r2")
    assert (s.loaded, s.superseded) == (1, 1)
    shutil.rmtree(folder)
    shutil.copytree(tmp_path / "as_first_sent", folder)  # withdrawn: back as first sent
    s = ingest_site_deliveries(con, landing.root, run_id="r3")
    assert (s.unchanged, s.loaded, s.superseded) == (0, 1, 1)
    rows = con.execute("SELECT status, run_id FROM raw.site_delivery ORDER BY delivery_key").fetchall()
    assert rows == [("superseded", "r1"), ("superseded", "r2"), ("loaded", "r3")]
    assert con.execute("SELECT count(*) FROM raw.sdtm_row_current WHERE domain = 'DM'").fetchone()[0] == 8
    assert ingest_site_deliveries(con, landing.root).unchanged == 1  # and now it is unchanged


def test_a_held_state_restored_after_a_fix_releases_its_quarantine(con, landing, sites, tmp_path):
    folder = deliver(sites)
    shutil.copytree(folder, tmp_path / "good")
    ingest_site_deliveries(con, landing.root)
    plant(folder, "bad_date")
    assert ingest_site_deliveries(con, landing.root).held == 1
    shutil.rmtree(folder)
    shutil.copytree(tmp_path / "good", folder)
    assert ingest_site_deliveries(con, landing.root).loaded == 1
    assert con.execute("SELECT count(*) FROM quarantine.record WHERE released_at IS NULL").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM raw.site_delivery_current").fetchone()[0] == 1


def test_a_warehouse_that_declared_states_unique_is_rebuilt_with_its_rows(con, landing, sites, monkeypatch):
    """Earlier warehouses declared state_sha256 UNIQUE; DuckDB cannot drop a constraint, so the table is
    copied once into the current definition, keys and sequence kept."""
    old = (Path(__file__).parents[3] / "schemas/sites/raw_sites.sql").read_text().replace(
        "state_sha256     VARCHAR NOT NULL,", "state_sha256     VARCHAR NOT NULL UNIQUE,")
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute(old)
    assert con.execute("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'site_delivery'"
                       " AND constraint_type = 'UNIQUE'").fetchone()[0] == 1
    deliver(sites, delivery_id="d1")
    from schemas import apply_sql
    monkeypatch.setattr(ingest, "ensure_site_schemas", lambda c: apply_sql(c, "sites/raw_sites.sql"))
    ingest_site_deliveries(con, landing.root)  # as the earlier version did: into the keyed table
    monkeypatch.undo()
    deliver(sites, delivery_id="d2", seed=5)
    ingest_site_deliveries(con, landing.root)
    kinds = con.execute("SELECT constraint_type, constraint_column_names FROM duckdb_constraints()"
                        " WHERE table_name = 'site_delivery' AND constraint_type IN ('UNIQUE', 'PRIMARY KEY')").fetchall()
    assert kinds == [("PRIMARY KEY", ["delivery_key"])]
    assert con.execute("SELECT list(delivery_key ORDER BY delivery_key) FROM raw.site_delivery").fetchone()[0] == [1, 2]
    assert status(con) == {"d1": "superseded", "d2": "loaded"}
    assert con.execute("SELECT count(DISTINCT delivery_key) FROM raw.sdtm_row").fetchone()[0] == 2
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'site_delivery_keyed'").fetchone()[0] == 0


@pytest.mark.parametrize("cutoff, needle", [
    ("0000-01-01", "'0000-01-01' is not a valid date"),  # RFC 3339's full-date allows year 0000
    ("1900-06-30", "'1900-06-30' is not a plausible cut-off date"),
    ("2162-06-30", "'2162-06-30' is not a plausible cut-off date"),  # would win over every later delivery
])
def test_an_implausible_cutoff_date_holds_the_delivery(con, landing, sites, cutoff, needle):
    folder = deliver(sites)
    meta = json.loads((folder / "manifest.json").read_text())
    write_manifest(folder, meta | {"cutoff_date": cutoff}, [f["name"] for f in meta["files"]])
    s = ingest_site_deliveries(con, landing.root)
    assert (s.loaded, s.held) == (0, 1)
    (q,) = quarantined(con)
    assert q[1] == "manifest_contract" and q[5] == "manifest.cutoff_date"
    assert q[6].startswith(f"delivery {folder.name}: manifest.json column cutoff_date: ") and needle in q[6]


def test_a_folder_that_cannot_be_read_is_not_decided_and_the_others_load(con, landing, sites, monkeypatch):
    """A listed file or a folder without read permission (`chmod 000`; simulated, as root reads anyway)
    and a folder name that is not UTF-8 crashed the step: no other delivery loaded, nor the registry."""
    import os

    folders = generate_delivery(sites, participants=9, sites=3, seed=9)
    locked, shut = folders[0], folders[1]
    bad = sites / os.fsdecode(b"site\xff")
    shutil.copytree(folders[2], bad)
    real = ingest.sha256_file

    def no_permission(path):
        if path == locked / "ae.csv":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    real_is_file = Path.is_file

    def shut_folder(self):
        if self.parent == shut:
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(ingest, "sha256_file", no_permission)
    monkeypatch.setattr(Path, "is_file", shut_folder)
    s = ingest_site_deliveries(con, landing.root, run_id="r1")
    assert (s.loaded, s.held) == (1, 0) and status(con) == {folders[2].name: "loaded"}
    assert sorted(s.undecided) == sorted([f"sites/{locked.name}: cannot be read: Permission denied (ae.csv)",
                                          f"sites/{shut.name}: cannot be read: Permission denied (manifest.json)",
                                          "sites/site\\xff: folder name is not UTF-8 text: rename it"])
    # held as folders, so `quarantine list` shows them (it said nothing was held), once however many runs
    held = [("site_ingest", "delivery_readable", u.split(": ", 1)[0], "$", "", None, u) for u in sorted(s.undecided)]
    assert s.as_dict()["undecided"] == 3 and quarantined(con) == held
    ingest_site_deliveries(con, landing.root, run_id="r1b")
    ingest_site_deliveries(con, landing.root, run_id="r1c", deliveries=[folders[2].name])  # a batch: only its own
    assert quarantined(con) == held
    monkeypatch.undo()
    s = ingest_site_deliveries(con, landing.root, run_id="r2")  # readable now: decided
    assert s.loaded == 2 and s.undecided == ["sites/site\\xff: folder name is not UTF-8 text: rename it"]
    assert con.execute("SELECT source_file FROM quarantine.record WHERE released_at IS NULL").fetchall() == [
        ("sites/site\\xff",)]


def test_a_file_replaced_while_the_delivery_is_read_is_not_loaded_that_run(con, landing, sites, monkeypatch):
    """The files were hashed, then read again to parse: dm.csv replaced in between loaded rows no
    manifest described, as the delivery's current state."""
    folder = deliver(sites)
    real = ingest.check_csv

    def replaced_meanwhile(path, kind, manifest):
        out = real(path, kind, manifest)
        if kind == "dm":
            lines = path.read_text().splitlines(keepends=True)
            path.write_text("".join(lines[:2]))  # the site's tool rewrites it: one participant left
        return out

    monkeypatch.setattr(ingest, "check_csv", replaced_meanwhile)
    s = ingest_site_deliveries(con, landing.root, run_id="r1")
    assert (s.loaded, s.held) == (0, 0) and status(con) == {}
    assert s.undecided == [f"sites/{folder.name}: changed while it was read; decided once it stops changing"]
    monkeypatch.undo()
    s = ingest_site_deliveries(con, landing.root, run_id="r2")  # the new state, as found: its checksum is wrong
    assert status(con) == {folder.name: "held"}
    assert "dm.csv has sha256" in con.execute("SELECT reason FROM quarantine.record").fetchone()[0]


def test_a_delivery_id_is_judged_by_its_latest_state_when_holds_are_released(con, landing, sites):
    """D1 loaded at one cut-off, then re-sent with a later cut-off and broken (held). D5, between the two,
    superseded D1's old row, and the release matched every row of the id: D1's current hold, on data
    newer than D5's, was released and left `quarantine list`."""
    generate_delivery(sites, participants=4, sites=1, seed=1, delivery_id="D1", cutoff="2025-04-30")
    ingest_site_deliveries(con, landing.root)
    shutil.rmtree(sites / "D1")
    (d1,) = generate_delivery(sites, participants=6, sites=1, seed=1, delivery_id="D1", cutoff="2025-09-30")
    plant(d1, "checksum_mismatch")
    ingest_site_deliveries(con, landing.root)
    generate_delivery(sites, participants=5, sites=1, seed=2, delivery_id="D5", cutoff="2025-06-30")
    ingest_site_deliveries(con, landing.root)
    rows = con.execute("SELECT delivery_id, cutoff_date::VARCHAR, status FROM raw.site_delivery ORDER BY delivery_key").fetchall()
    assert rows == [("D1", "2025-04-30", "superseded"), ("D1", "2025-09-30", "held"), ("D5", "2025-06-30", "loaded")]
    assert con.execute("SELECT DISTINCT record_key FROM quarantine.record WHERE released_at IS NULL").fetchall() == [("D1",)]


@pytest.mark.parametrize("broken_first", [True, False])
def test_an_older_broken_delivery_ends_superseded_whichever_arrives_first(con, landing, sites, broken_first):
    """Arriving first, the broken older delivery was held, then released when the newer one loaded;
    arriving after it, it was held for good. Either way it is superseded now, its problems recorded."""
    def older():
        (folder,) = generate_delivery(sites, participants=4, sites=1, seed=1, delivery_id="D3", cutoff="2025-03-31")
        plant(folder, "checksum_mismatch")

    def newer():
        generate_delivery(sites, participants=4, sites=1, seed=2, delivery_id="D6", cutoff="2025-06-30")

    for make in ((older, newer) if broken_first else (newer, older)):
        make()
        ingest_site_deliveries(con, landing.root)
    assert con.execute("SELECT count(*) FROM quarantine.record WHERE released_at IS NULL").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM quarantine.record WHERE record_key = 'D3'").fetchone()[0] >= 1
    latest = con.execute("SELECT status, reason FROM raw.site_delivery WHERE delivery_id = 'D3' "
                         "ORDER BY delivery_key DESC LIMIT 1").fetchone()
    if broken_first:
        assert latest[0] == "held"  # decided before D6 came; its hold released by D6
    else:
        assert latest[0] == "superseded" and "superseded on arrival by D6" in latest[1]
        assert "it broke the contract too: " in latest[1]


def test_a_corrected_resend_of_a_delivery_id_releases_its_participant_holds(con, landing, sites):
    """A participant held from RESEND's first state: the id re-sent corrected loads, and the hold of its
    first state stayed in `quarantine list` for good (the gate judges the new state again)."""
    (folder,) = generate_delivery(sites, participants=4, sites=1, seed=1, delivery_id="RESEND", cutoff="2026-06-30")
    ingest_site_deliveries(con, landing.root)
    con.execute("INSERT INTO quarantine.record (run_id, quarantined_at, source_file, record_key, source_record, suite, "
                "rule, field, reason) VALUES ('r', now()::TIMESTAMP, 'sites/RESEND/dm.csv', 'RESEND/NCT06668571-001-0001', "
                "'dm row 1', 'site_protocol', 'eligibility.age_max', 'dm.AGE', 'too old')")
    shutil.rmtree(folder)
    generate_delivery(sites, participants=5, sites=1, seed=2, delivery_id="RESEND", cutoff="2026-06-30")
    s = ingest_site_deliveries(con, landing.root)
    assert s.loaded == 1
    assert con.execute("SELECT count(*) FROM quarantine.record WHERE released_at IS NULL").fetchone()[0] == 0


def test_a_resend_with_an_earlier_cut_off_replaces_its_own_id_not_superseded_by_itself(con, landing, sites):
    (folder,) = generate_delivery(sites, participants=4, sites=1, seed=1, delivery_id="D2", cutoff="2026-07-01")
    ingest_site_deliveries(con, landing.root)
    shutil.rmtree(folder)
    generate_delivery(sites, participants=5, sites=1, seed=2, delivery_id="D2", cutoff="2026-06-30")
    s = ingest_site_deliveries(con, landing.root)
    assert (s.loaded, s.superseded) == (1, 1) and s.superseded_why == ["delivery D2: its earlier state superseded by the one re-sent (cut-off 2026-06-30)"]
    rows = con.execute("SELECT cutoff_date::VARCHAR, status FROM raw.site_delivery ORDER BY delivery_key").fetchall()
    assert rows == [("2026-07-01", "superseded"), ("2026-06-30", "loaded")]
    assert con.execute("SELECT count(*) FROM raw.sdtm_row_current WHERE domain = 'DM'").fetchone()[0] == 5
