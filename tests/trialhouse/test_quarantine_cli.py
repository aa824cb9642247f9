"""`trialhouse quarantine list | retry` after a fix upstream."""
import json
import re
import shutil

import duckdb

from tests.conftest import CTGOV
from trialhouse.cli import main


def args(landing, tmp_path):
    return ["--landing", str(landing.root), "--warehouse", str(tmp_path / "wh.duckdb"), "--export", str(tmp_path / "x")]


def test_list_shows_what_is_held_and_retry_publishes_after_a_fix(landing, tmp_path, capsys):
    rec = json.loads((CTGOV / "NCT06668571.json").read_text())
    rec["protocolSection"]["statusModule"]["overallStatus"] = "BOGUS"
    bad = landing.write("NCT06668571.json", json.dumps(rec))
    landing.drop(CTGOV / "NCT00184067.json")
    assert main(["run", *args(landing, tmp_path), "--json"]) == 0
    capsys.readouterr()

    assert main(["quarantine", "list", *args(landing, tmp_path), "--json"]) == 0
    held = json.loads(capsys.readouterr().out)
    assert [(h["record_key"], h["rule"]) for h in held] == [("NCT06668571", "enum.overall_status")]
    assert main(["quarantine", "list", *args(landing, tmp_path)]) == 0
    assert "overallStatus = 'BOGUS'" in capsys.readouterr().out
    # --nct and --rule narrow the list as they narrow a retry.
    for narrowed, expected in ((["--nct", "NCT06668571"], 1), (["--nct", "NCT00184067"], 0),
                               (["--rule", "enum.overall_status"], 1), (["--rule", "nct_id_pattern"], 0)):
        assert main(["quarantine", "list", *args(landing, tmp_path), *narrowed, "--json"]) == 0
        assert len(json.loads(capsys.readouterr().out)) == expected, narrowed

    # A retry on a landing folder that is not there releases nothing.
    assert main(["quarantine", "retry", "--landing", str(tmp_path / "gone"), *args(landing, tmp_path)[2:]]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["quarantine", "list", *args(landing, tmp_path), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1

    # A retry without a fix holds it again, with a new reason row.
    assert main(["quarantine", "retry", *args(landing, tmp_path), "--json"]) == 0
    capsys.readouterr()
    assert main(["quarantine", "list", *args(landing, tmp_path), "--json"]) == 0
    out = capsys.readouterr().out
    assert len(json.loads(out)) == 1, out

    # The registry posts a corrected version (a later lastUpdatePostDate); retry runs it through.
    fixed = json.loads((CTGOV / "NCT06668571.json").read_text())
    fixed["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2025-11-01"
    bad.write_text(json.dumps(fixed))
    assert main(["quarantine", "retry", *args(landing, tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["published"] == 1
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT status FROM meta.study_state WHERE nct_id = 'NCT06668571' AND status = 'published'").fetchall()
    assert main(["quarantine", "list", *args(landing, tmp_path)]) == 0
    assert "nothing is held" in capsys.readouterr().out


def test_a_file_fixed_in_place_with_its_dates_kept_is_published_by_retry(landing, tmp_path, capsys):
    """The held content, released by retry, tied with its correction (same lastUpdatePostDate and
    versionHolder): both were held as ambiguous, on every run and retry after. The later run's content
    is current, as it is when the earlier one was published; two tied contents of one run still tie."""
    rec = json.loads((CTGOV / "NCT06668571.json").read_text())
    rec["protocolSection"]["statusModule"]["overallStatus"] = "SORT_OF_RECRUITING"
    bad = landing.write("NCT06668571.json", json.dumps(rec))
    assert main(["run", *args(landing, tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["quarantined"] == 1
    bad.write_bytes((CTGOV / "NCT06668571.json").read_bytes())  # fixed by hand, dates as they were
    assert main(["quarantine", "retry", *args(landing, tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["published"], summary["quarantined"]) == (1, 0), summary
    assert main(["quarantine", "list", *args(landing, tmp_path)]) == 0
    assert "nothing is held" in capsys.readouterr().out
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT payload->>'$.protocolSection.statusModule.overallStatus' FROM raw.ctgov_study_version v "
                           "JOIN meta.study_state s USING (nct_id, content_hash) WHERE s.status = 'published'"
                           ).fetchall() == [(json.loads(bad.read_text())["protocolSection"]["statusModule"]["overallStatus"],)]


def test_list_shows_files_that_could_not_be_read_and_retry_reads_them_again(landing, tmp_path, capsys):
    """A file with no readable record (not JSON) is held whole: `list` shows it, as `retry` re-reads it."""
    landing.drop(CTGOV / "NCT00184067.json")
    broken = landing.write("NCT06668571.json", '{"protocolSection": {')
    assert main(["run", *args(landing, tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["files_failed"] == 1

    assert main(["quarantine", "list", *args(landing, tmp_path), "--json"]) == 0
    held = json.loads(capsys.readouterr().out)
    assert [(h["source_file"], h["suite"], h["rule"], h["record_key"]) for h in held] == [
        ("ctgov/NCT06668571.json", "raw_ingest", "file_readable", None)]
    assert held[0]["reason"].startswith("ctgov/NCT06668571.json: invalid JSON at line 1")
    assert main(["quarantine", "list", *args(landing, tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "- ctgov/NCT06668571.json  [raw_ingest/file_readable]" in out and "invalid JSON" in out
    # a failed file has no study: narrowed to one, it is not listed; narrowed to its rule, it is
    for narrowed, expected in ((["--nct", "NCT06668571"], 0), (["--rule", "file_readable"], 1),
                               (["--rule", "enum.overall_status"], 0)):
        assert main(["quarantine", "list", *args(landing, tmp_path), *narrowed, "--json"]) == 0
        assert len(json.loads(capsys.readouterr().out)) == expected, narrowed

    # Fixed at its path and read by a plain run, it is no longer held: the path holds new content.
    other = landing.write("NCT00276835.json", "not json")
    broken.write_bytes((CTGOV / "NCT06668571.json").read_bytes())
    assert main(["quarantine", "list", *args(landing, tmp_path), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1  # not read yet: still what the warehouse knows
    assert main(["run", *args(landing, tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["published"] == 1
    assert main(["quarantine", "list", *args(landing, tmp_path), "--json"]) == 0
    assert [h["source_file"] for h in json.loads(capsys.readouterr().out)] == ["ctgov/NCT00276835.json"]

    # retry re-reads a failed file: unfixed, it fails again and is listed again
    assert main(["quarantine", "retry", *args(landing, tmp_path)]) == 0
    assert "released 0 record(s) in 0 row(s) (0 study version(s), 0 participant(s) to gate again, 1 file(s) to re-read)" \
        in capsys.readouterr().out
    assert main(["quarantine", "list", *args(landing, tmp_path), "--json"]) == 0
    assert [h["source_file"] for h in json.loads(capsys.readouterr().out)] == ["ctgov/NCT00276835.json"]
    # deleted, it is no longer what lies at its path: not listed (it was, until a retry)
    gone = landing.write("gone.json", "not json either")
    assert main(["run", *args(landing, tmp_path), "--json"]) == 0
    capsys.readouterr()
    gone.unlink()
    assert main(["quarantine", "list", *args(landing, tmp_path), "--json"]) == 0
    assert [h["source_file"] for h in json.loads(capsys.readouterr().out)] == ["ctgov/NCT00276835.json"]
    other.write_bytes((CTGOV / "NCT00276835.json").read_bytes())
    assert main(["quarantine", "retry", *args(landing, tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["published"] == 1
    assert main(["quarantine", "list", *args(landing, tmp_path)]) == 0
    assert "nothing is held" in capsys.readouterr().out


def test_list_shows_a_file_with_nothing_to_read_until_it_is_gone(landing, tmp_path, capsys):
    """A pipe, a file without permission, a folder that cannot be listed: no content, so no landed-file
    row, and `list` said nothing was held while the run's log named it every time. Held as a file now,
    once however many runs see it, and released when a run no longer finds it."""
    import os

    landing.drop(CTGOV / "NCT00184067.json")
    os.mkfifo(landing.root / "ctgov" / "pipe.json")
    for _ in range(2):
        assert main(["run", *args(landing, tmp_path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["files_failed"] == 1
    assert main(["quarantine", "list", *args(landing, tmp_path), "--json"]) == 0
    held = json.loads(capsys.readouterr().out)
    assert [(h["source_file"], h["suite"], h["rule"], h["record_key"], h["reason"]) for h in held] == [
        ("ctgov/pipe.json", "raw_ingest", "file_readable", "$",
         "ctgov/pipe.json: is not a regular file (a pipe, socket or device): nothing to read")]
    assert main(["quarantine", "list", *args(landing, tmp_path)]) == 0
    assert "1 held record(s) or file(s):\n- ctgov/pipe.json  [raw_ingest/file_readable]" in capsys.readouterr().out

    # retry lets the next run look again: still a pipe, it is held again
    assert main(["quarantine", "retry", *args(landing, tmp_path)]) == 0
    capsys.readouterr()
    assert main(["quarantine", "list", *args(landing, tmp_path), "--json"]) == 0
    assert [h["source_file"] for h in json.loads(capsys.readouterr().out)] == ["ctgov/pipe.json"]

    (landing.root / "ctgov" / "pipe.json").unlink()
    assert main(["run", *args(landing, tmp_path), "--json"]) == 0
    capsys.readouterr()
    assert main(["quarantine", "list", *args(landing, tmp_path)]) == 0
    assert "nothing is held" in capsys.readouterr().out


def test_a_site_folder_with_nothing_to_read_is_counted_held_and_the_summary_says_where_to_look(landing, tmp_path, capsys):
    """Held in quarantine, yet the run said `quarantined 0` and gave no hint: the count agrees with the list now."""
    import os

    landing.drop(CTGOV / "NCT00184067.json")
    (landing.root / "sites" / os.fsdecode(b"site\xff")).mkdir(parents=True)
    assert main(["run", *args(landing, tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["quarantined"] == 1
    assert summary["site_deliveries_undecided"] == ["sites/site\\xff: folder name is not UTF-8 text: rename it"]
    assert main(["run", *args(landing, tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\n  quarantined +1\n", out) and "`trialhouse quarantine list" in out
    assert main(["quarantine", "list", *args(landing, tmp_path)]) == 0
    assert "1 held record(s) or file(s):\n- sites/site\\xff  [site_ingest/delivery_readable]" in capsys.readouterr().out


def test_retry_of_paths_with_nothing_to_read_leaves_other_files_alone_and_counts_each(landing, tmp_path, capsys):
    """Retrying rule file_readable re-read every file holding an unkeyable record too (both are keyed '$'),
    whose holds were then written a second time; and two pipes were released as one record."""
    import os

    rec = json.loads((CTGOV / "NCT00184067.json").read_text())
    del rec["protocolSection"]["identificationModule"]["nctId"]
    landing.write("nokey.json", json.dumps(rec))
    for name in ("pipe.json", "pipe2.json"):
        os.mkfifo(landing.root / "ctgov" / name)
    assert main(["run", *args(landing, tmp_path), "--json"]) == 0
    capsys.readouterr()
    assert main(["quarantine", "retry", *args(landing, tmp_path), "--rule", "raw_ingest/file_readable"]) == 0
    assert "released 2 record(s) in 2 row(s) (0 study version(s), 0 participant(s) to gate again, 0 file(s) to re-read)" \
        in capsys.readouterr().out
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        held = con.execute("SELECT source_file, rule FROM quarantine.record WHERE released_at IS NULL "
                           "ORDER BY 1").fetchall()
    assert held == [("ctgov/nokey.json", "record_keyable"), ("ctgov/pipe.json", "file_readable"),
                    ("ctgov/pipe2.json", "file_readable")]


def test_site_holds_narrow_by_study_and_rule_and_retry_gates_the_participant_again(landing, tmp_path, capsys):
    """Retry marked a held participant released, yet the site data, gated only when deliveries change,
    was not gated again: `list` said nothing was held while the participant stayed unpublished. A
    delivery the contract holds stays held (its folder decides it), and says so."""
    from trialhouse.snapshot import work_path
    from trialhouse.synth_site import generate_delivery, plant

    landing.drop(CTGOV / "NCT06668571.json")
    first, second = generate_delivery(landing.root / "sites", participants=16, sites=2, seed=1)
    plant(first, "age_70")
    plant(second, "checksum_mismatch")
    assert main(["run", *args(landing, tmp_path), "--json"]) == 0
    # records, as the list counts them: the participant's ~80 held rows were counted one by one
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["quarantined"] == 2

    assert main(["quarantine", "list", *args(landing, tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 held record(s) or file(s) (")  # one participant and one delivery, not a line per row
    assert "[site_protocol/eligibility.age_max]" in out and "dm.AGE = 70.0 is above" in out
    for narrowed, expected in ((["--nct", "NCT06668571"], {"eligibility.age_max", "manifest_checksum"}),
                               (["--nct", "NCT00000000"], set()),
                               (["--rule", "site_protocol/eligibility.age_max"], {"eligibility.age_max"}),
                               (["--rule", "raw_ingest/eligibility.age_max"], set())):
        assert main(["quarantine", "list", *args(landing, tmp_path), *narrowed, "--json"]) == 0
        assert {h["rule"] for h in json.loads(capsys.readouterr().out)} == expected, narrowed

    def held_since(run_id):
        with duckdb.connect(str(work_path(str(tmp_path / "wh.duckdb"))), read_only=True) as con:
            return con.execute("SELECT DISTINCT suite, run_id = ? FROM quarantine.record WHERE released_at IS NULL",
                               [run_id]).fetchall()

    assert main(["quarantine", "retry", *args(landing, tmp_path), "--json"]) == 0
    io = capsys.readouterr()
    assert "1 participant(s) to gate again" in io.err and "1 delivery(ies) the site contract holds stay held" in io.err
    retry_run = json.loads(io.out.strip().splitlines()[-1])["run_id"]
    # gated again in the retry's run, and held again (nothing was fixed); the delivery's hold stands
    assert sorted(held_since(retry_run)) == [("site_contract", False), ("site_protocol", True)]
    # ...until its folder is gone: nothing would decide it again, so a retry releases it (the list says so)
    assert main(["quarantine", "list", *args(landing, tmp_path), "--rule", "manifest_checksum"]) == 0
    assert "its folder is gone" not in capsys.readouterr().out
    shutil.rmtree(second)
    assert main(["quarantine", "list", *args(landing, tmp_path), "--rule", "manifest_checksum"]) == 0
    assert "(its folder is gone from the landing folder: `trialhouse quarantine retry` releases it)" in \
        capsys.readouterr().out
    assert main(["quarantine", "retry", *args(landing, tmp_path), "--rule", "manifest_checksum", "--json"]) == 0
    assert "stay held" not in capsys.readouterr().err
    assert main(["quarantine", "list", *args(landing, tmp_path), "--rule", "manifest_checksum", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_list_refuses_what_is_not_a_warehouse_and_stops_quietly_when_its_reader_does(tmp_path, capsys):
    """Both ended in a traceback: a text file or a folder given as --warehouse, and `list | head`."""
    import subprocess
    import sys

    from schemas import apply_sql, ensure_base_schemas

    (tmp_path / "notes.duckdb").write_text("not a database")
    for target, says in ((tmp_path / "notes.duckdb", "is not a DuckDB database"), (tmp_path, "is a folder")):
        assert main(["quarantine", "list", "--warehouse", str(target)]) == 2
        assert says in capsys.readouterr().err

    wh = tmp_path / "wh.duckdb"
    with duckdb.connect(str(wh)) as con:
        ensure_base_schemas(con)
        apply_sql(con, "meta/meta.sql")
        con.execute("INSERT INTO quarantine.record (run_id, quarantined_at, source_file, record_key, source_record, suite, "
                    "rule, field, reason) SELECT 'r', now()::TIMESTAMP, 'ctgov/x.json', 'NCT' || lpad(i::VARCHAR, 8, '0'), "
                    "'', 'ctgov_registry', 'enum.overall_status', 'f', repeat('a reason ', 20) FROM range(20000) t(i)")
    proc = subprocess.Popen([sys.executable, "-m", "trialhouse.cli", "quarantine", "list", "--warehouse", str(wh)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"20000 held record(s)")
    proc.stdout.close()  # as `head -1` does
    assert proc.wait(timeout=120) == 0
    assert b"Traceback" not in proc.stderr.read()


def test_the_run_summary_names_a_delivery_superseded_on_arrival(landing, tmp_path, capsys):
    """A delivery that arrived after another of its site with the same cut-off and a later id was
    superseded on arrival: the summary said loaded 0, held 0, waiting 0, and nothing of the folder."""
    from trialhouse.synth_site import generate_delivery

    landing.drop(CTGOV / "NCT06668571.json")
    generate_delivery(landing.root / "sites", participants=6, sites=1, seed=1, delivery_id="D-b")
    assert main(["run", *args(landing, tmp_path), "--json"]) == 0
    capsys.readouterr()
    generate_delivery(landing.root / "sites", participants=6, sites=1, seed=2, delivery_id="D-a")
    assert main(["run", *args(landing, tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "site_deliveries_superseded  1" in out
    assert "site delivery D-a: superseded on arrival by D-b (cut-off 2026-06-30, the same as this one's" in out


def test_records_held_at_the_same_place_of_two_files_are_two_records(landing, tmp_path, capsys):
    """Raw ingest keys a record it cannot key by its place in its file: `[1]` of two arrays (or
    `studies[1]` of two pages) were listed as one record with the newest reason, and a retry counted one
    where the run had said two (a review)."""
    seed = json.loads((CTGOV / "NCT06668571.json").read_text())
    landing.write("one.json", json.dumps([seed, 5]))
    other = json.loads((CTGOV / "NCT00184067.json").read_text())
    landing.write("two.json", json.dumps([other, "x"]))
    # a held record that names its study plainly is keyed by it: `--nct` found nothing before
    other["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2026-01-15T00:00:00Z"
    landing.write("baddate.json", json.dumps(other))
    assert main(["run", *args(landing, tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["quarantined"] == 3 and summary["published"] == 2

    assert main(["quarantine", "list", *args(landing, tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3 held record(s) or file(s):"), out
    assert "- ctgov/one.json record [1]  [raw_ingest/record_keyable]" in out
    assert "ctgov/one.json record [1]: record is a JSON int, not an object" in out
    assert "ctgov/two.json record [1]: record is a JSON str, not an object" in out
    assert "- ctgov/baddate.json record NCT00184067  [raw_ingest/record_keyable]" in out
    assert main(["quarantine", "list", *args(landing, tmp_path), "--nct", "NCT00184067", "--json"]) == 0
    assert [h["source_file"] for h in json.loads(capsys.readouterr().out)] == ["ctgov/baddate.json"]
    assert main(["quarantine", "retry", *args(landing, tmp_path)]) == 0
    assert "released 3 record(s) in 3 row(s)" in capsys.readouterr().out
