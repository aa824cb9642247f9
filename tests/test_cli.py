"""The `trialhouse` command, end to end through the Dagster asset graph (in-process)."""
import json
import subprocess
import sys
from pathlib import Path

import duckdb

from tests.conftest import CTGOV
from trialhouse.cli import main
from trialhouse.settings import SAMPLE_LANDING, Settings


def bundled_studies() -> set[str]:
    return {
        json.loads(p.read_text())["protocolSection"]["identificationModule"]["nctId"]
        for p in SAMPLE_LANDING.rglob("*.json")
    }


def test_demo_builds_a_warehouse_with_every_bundled_study(tmp_path, capsys):
    assert main(["demo", "--dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "completed" in out and "raw.ctgov_study_version" in out and "dg dev" in out
    # on the demo's own folder, which a bare `dg dev` (./data) would not show
    assert f"TRIALHOUSE_WAREHOUSE={tmp_path}/data/warehouse.duckdb" in out
    # this run's Data Docs page, where the tour printed a placeholder (a newcomer's walkthrough)
    (docs,) = [line.split("Data Docs:", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("Data Docs:")]
    assert "<run id>" not in docs and Path(docs).is_file() and Path(docs).name == "index.html"
    # the synthetic site delivery answers the three site questions in the tour
    for title in ("Mean PHQ-9 change from baseline to day 1 by arm", "Adverse events by arm", "Participants per site"):
        assert title in out
    assert "Ketamine Group" in out and "Mayo Clinic" in out
    # one synthetic participant dies, so the tour shows omop.death with its cause
    assert "Deaths in the synthetic site data (omop.death)" in out and "Myocardial infarction" in out
    assert "shown)" not in out  # DuckDB's "7 columns (6 shown)": the tour hid a column of adverse events by arm
    # sites whose "city, state, zip, country" is longer than location_source_value's 50 characters
    # (once: the site gate, which validates the OMOP stage again, repeats the OMOP gate's warnings)
    assert out.count("  warning: value_cut.location.location_source_value: ") == 1
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as con:
        n = con.execute("SELECT count(DISTINCT nct_id) FROM raw.ctgov_study_version").fetchone()[0]
    assert n == len(bundled_studies()) >= 10
    assert "NCT06668571" in bundled_studies()


def test_run_json_summary_and_exit_code(tmp_path, landing, capsys):
    landing.drop(CTGOV / "NCT06668571.json")
    landing.drop(CTGOV / "NCT00184067.json")
    landing.write("broken.json", "{")
    wh = tmp_path / "w.duckdb"
    code = main(["run", "--landing", str(landing.root), "--warehouse", str(wh), "--export", str(tmp_path / "x"), "--json"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0  # a failed file is reported, not a crash
    assert summary["files_seen"] == 3 and summary["files_failed"] == 1
    # which file, and why: the count alone sent the reader to the Dagster log
    assert [e.split(":")[0] for e in summary["failed_files"]] == ["ctgov/broken.json"], summary["failed_files"]
    assert "invalid JSON" in summary["failed_files"][0]
    assert summary["studies_seen"] == 2 and summary["new_versions"] == 2
    assert {"published", "quarantined", "blocked"} <= summary.keys()
    assert summary["warnings"] == []  # no value of these two studies is longer than its OMOP column
    assert main(["run", "--landing", str(landing.root), "--warehouse", str(wh), "--export", str(tmp_path / "x"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["new_versions"] == 0 and again["files_seen"] == 3


def test_environment_variables_are_the_defaults(tmp_path, landing):
    landing.drop(CTGOV / "NCT06668571.json")
    env = {"TRIALHOUSE_LANDING": str(landing.root), "TRIALHOUSE_WAREHOUSE": str(tmp_path / "env.duckdb"),
           "TRIALHOUSE_EXPORT": str(tmp_path / "exp"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "trialhouse.cli", "run", "--json"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["new_versions"] == 1
    assert Path(tmp_path / "env.duckdb").exists()


def test_run_on_a_landing_folder_that_is_not_there_says_so_and_touches_nothing(tmp_path, capsys):
    missing, wh = tmp_path / "no-such-landing", tmp_path / "w.duckdb"
    code = main(["run", "--landing", str(missing), "--warehouse", str(wh), "--export", str(tmp_path / "x"), "--json"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"landing folder {missing} is not a folder" in err and "TRIALHOUSE_LANDING" in err
    assert not wh.exists() and not (tmp_path / "w.work.duckdb").exists() and not (tmp_path / "x").exists()


def test_run_json_says_why_nothing_was_done_and_a_vocabulary_folder_is_checked_before_any_step(tmp_path, capsys):
    """`--json` printed nothing on stdout when the run did not start; a mistyped --vocab ran every step before
    the vocabulary's failed with a FileNotFoundError (a newcomer's walkthrough)."""
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    (landing / "ctgov").mkdir(parents=True)
    athena = tmp_path / "athena"
    athena.mkdir()
    (athena / "CONCEPT.csv").write_text("concept_id\n")
    for vocab, why in ((tmp_path / "no-such-vocab", "is not a folder"), (athena, "has no VOCABULARY.csv")):
        code = main(["run", "--landing", str(landing), "--warehouse", str(wh), "--export", str(tmp_path / "x"),
                     "--vocab", str(vocab), "--json"])
        out, err = capsys.readouterr()
        assert code == 2 and f"vocabulary folder {vocab} {why}" in err and "TRIALHOUSE_VOCAB" in err
        summary = json.loads(out)
        assert summary["success"] is False and summary["failures"] == [err.strip().split(": ", 1)[1]]
        assert not wh.exists() and not (tmp_path / "w.work.duckdb").exists()


def _own_database(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE precious AS SELECT 42 AS answer")


def test_a_warehouse_path_naming_a_file_of_ones_own_is_refused_and_the_file_kept(tmp_path, landing, capsys):
    """It was replaced by the warehouse with exit 0, and the next publish overwrote the standby the old
    bytes had become (newcomer's review)."""
    landing.drop(CTGOV / "NCT06668571.json")
    mine, notes = tmp_path / "mine.duckdb", tmp_path / "notes.txt"
    _own_database(mine)
    notes.write_text("hello\n")
    for path in (mine, notes, tmp_path):
        before = path.read_bytes() if path.is_file() else None
        code = main(["run", "--landing", str(landing.root), "--warehouse", str(path), "--export", str(tmp_path / "x")])
        err = capsys.readouterr().err
        assert code == 2 and str(path) in err and "nothing was done" in err, err
        assert before is None or path.read_bytes() == before
    assert not (tmp_path / "x").exists()
    with duckdb.connect(str(mine), read_only=True) as con:
        assert con.execute("SELECT answer FROM precious").fetchone() == (42,)


def test_a_run_refused_before_its_steps_says_why(tmp_path, landing):
    """The Dagster path (no CLI check first): the run fails at its resources, and the report carries the
    reason instead of a bare FAILED."""
    from trialhouse.runner import run_pipeline
    from trialhouse.settings import Settings

    landing.drop(CTGOV / "NCT06668571.json")
    mine = tmp_path / "mine.duckdb"
    _own_database(mine)
    report = run_pipeline(Settings(str(mine), str(landing.root), str(tmp_path / "x"), None), log_level="CRITICAL")
    assert not report.success
    assert report.failures and report.failures[0].startswith("resources: ")
    assert "did not publish (it has no meta.load_log)" in report.failures[0]
    with duckdb.connect(str(mine), read_only=True) as con:
        assert con.execute("SELECT answer FROM precious").fetchone() == (42,)


def test_demo_into_a_path_that_is_a_file_says_so(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["demo", "--dir", str(tmp_path / "afile")]) == 2
    assert "cannot make the demo folder" in capsys.readouterr().err


def test_a_blocked_run_prints_the_rules_that_blocked_it(capsys):
    from trialhouse.cli import _listed, _print_human

    summary = {"run_id": "r", "success": True, "files_seen": 5, "files_failed": 0, "studies_seen": 5, "new_versions": 5,
               "site_deliveries_loaded": 0, "site_deliveries_held": 0, "site_deliveries_superseded": 0, "site_deliveries_waiting": 0, "published": 0,
               "quarantined": 2,
               "blocked": True, "failures": [],
               "blocked_by": {"stage/ctgov_study:ctgov_registry_gate": {
                   "batch_rule_failures": _listed("- quarantine_share: 2 of 5 records (40%) quarantined"),
                   "data_docs": "/x/data_docs/r/index.html"}}}
    _print_human({**summary, "success": False})  # Dagster fails a blocking check's step
    out = capsys.readouterr().out
    assert out.startswith("run r: BLOCKED by its gate: this run's batch was not published\n"), out
    assert "FAILED" not in out and "failure:" not in out
    assert "blocked by stage/ctgov_study:ctgov_registry_gate:\n    - quarantine_share: 2 of 5 records" in out
    assert "Data Docs: /x/data_docs/r/index.html" in out
    assert "`trialhouse quarantine list` says what is held and why" in out
    assert _listed("none") == [] and _listed(None) == []


def test_the_human_summary_names_each_failed_file(capsys):
    from trialhouse.cli import _print_human

    summary = {"run_id": "r", "success": True, "files_seen": 25, "files_failed": 22, "studies_seen": 3, "new_versions": 3,
               "site_deliveries_loaded": 0, "site_deliveries_held": 0, "site_deliveries_superseded": 0, "site_deliveries_waiting": 0, "published": 3,
               "quarantined": 0, "blocked": False, "failures": [],
               "failed_files": [f"ctgov/b{i}.json: invalid JSON at line 1 column 2" for i in range(20)],
               "site_deliveries_undecided": ["sites/d1: cannot be read: Permission denied (ae.csv)"]}
    _print_human(summary, " --warehouse /tmp/w.duckdb")
    out = capsys.readouterr().out
    assert "`trialhouse quarantine list --warehouse /tmp/w.duckdb` says" in out
    assert "  failed file: ctgov/b0.json: invalid JSON at line 1 column 2\n" in out
    assert out.count("  failed file: ") == 20
    assert "... 2 more failed file(s)" in out  # the asset's metadata lists 20
    assert "  site delivery not decided: sites/d1: cannot be read: Permission denied (ae.csv)\n" in out
    assert "the run's log names each" in out


def test_a_dagster_run_on_a_landing_folder_that_is_not_there_fails_naming_it(tmp_path):
    """The command line refuses it up front; a run launched from Dagster succeeded with an empty warehouse."""
    from trialhouse.runner import run_pipeline
    from trialhouse.settings import Settings

    missing = tmp_path / "landing_typo"
    report = run_pipeline(Settings(str(tmp_path / "w.duckdb"), str(missing), str(tmp_path / "x"), None),
                          log_level="CRITICAL")
    assert not report.success
    assert any(f"landing folder {missing} is not a folder (TRIALHOUSE_LANDING)" in f for f in report.failures)
    assert not (tmp_path / "w.duckdb").exists()


def test_a_site_folder_without_its_manifest_is_counted_as_waiting(tmp_path, landing, capsys):
    """It waited with nothing in the output: a delivery copied without its manifest looked ignored."""
    landing.drop(CTGOV / "NCT06668571.json")
    copying = landing.root / "sites" / "D-2026-06-001"
    copying.mkdir(parents=True)
    (copying / "dm.csv").write_text("STUDYID\n")
    code = main(["run", "--landing", str(landing.root), "--warehouse", str(tmp_path / "w.duckdb"),
                 "--export", str(tmp_path / "x")])
    out = capsys.readouterr().out
    assert code == 0 and "site_deliveries_waiting     1" in out


def test_a_file_where_no_step_reads_is_named(tmp_path, landing, capsys):
    """A study dropped at the landing folder's top was neither landed, failed nor counted."""
    landing.drop(CTGOV / "NCT06668571.json")
    (landing.root / "NCT00184067.json").write_bytes((CTGOV / "NCT00184067.json").read_bytes())
    args = ["run", "--landing", str(landing.root), "--warehouse", str(tmp_path / "w.duckdb"), "--export", str(tmp_path / "x")]
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["unread_paths"] == ["NCT00184067.json"] and summary["studies_seen"] == 1
    assert main(args) == 0
    assert "  not read: NCT00184067.json (registry records go under ctgov/" in capsys.readouterr().out


def test_the_follow_up_commands_name_the_paths_the_run_was_given(tmp_path, monkeypatch):
    """A bare `trialhouse quarantine list` after a run on other paths read ./data: "nothing is held"."""
    from trialhouse.cli import _path_args

    for var in ("TRIALHOUSE_WAREHOUSE", "TRIALHOUSE_LANDING", "TRIALHOUSE_EXPORT", "TRIALHOUSE_VOCAB"):
        monkeypatch.delenv(var, raising=False)
    assert _path_args(Settings.from_env()) == ""
    given = Settings.from_env(warehouse=str(tmp_path / "my wh.duckdb"), landing=str(tmp_path / "in"))
    assert _path_args(given) == f" --landing {tmp_path}/in --warehouse '{tmp_path}/my wh.duckdb'"
    monkeypatch.setenv("TRIALHOUSE_LANDING", str(tmp_path / "in"))  # the environment says it already
    assert _path_args(given) == f" --warehouse '{tmp_path}/my wh.duckdb'"


def test_the_tour_from_another_folder_prints_commands_that_work_there(tmp_path, monkeypatch, capsys):
    """`uv run` and DAGSTER_HOME=$PWD/dagster_home need the project folder: `demo --dir` run from elsewhere
    printed commands that failed where they were printed (a newcomer's walkthrough)."""
    from trialhouse.cli import PROJECT, _print_demo_tour

    duckdb.connect(str(tmp_path / "w.duckdb")).close()
    monkeypatch.chdir(tmp_path)
    _print_demo_tour(Settings(warehouse="w.duckdb", landing="l", export="x", vocab=None), queries=[])
    out = capsys.readouterr().out
    assert f"  cd {PROJECT} && uv run python -c \"import duckdb; print(duckdb.connect('{tmp_path}/w.duckdb'" in out
    assert f"cd {PROJECT} && DAGSTER_HOME=$PWD/dagster_home TRIALHOUSE_LANDING={tmp_path}/l " in out
    assert f"Data Docs:        {tmp_path}/x/data_docs/<run id>/index.html" in out
