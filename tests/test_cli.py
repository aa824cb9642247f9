"""The `trialhouse` command, end to end through the Dagster asset graph (in-process)."""
import json
import subprocess
import sys
from pathlib import Path

import duckdb

from tests.conftest import CTGOV
from trialhouse.cli import main
from trialhouse.settings import SAMPLE_LANDING


def bundled_studies() -> set[str]:
    return {
        json.loads(p.read_text())["protocolSection"]["identificationModule"]["nctId"]
        for p in SAMPLE_LANDING.rglob("*.json")
    }


def test_demo_builds_a_warehouse_with_every_bundled_study(tmp_path, capsys):
    assert main(["demo", "--dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "completed" in out and "raw.ctgov_study_version" in out and "dg dev" in out
    # the synthetic site delivery answers the three site questions in the tour
    for title in ("Mean PHQ-9 change from baseline to day 1 by arm", "Adverse events by arm", "Participants per site"):
        assert title in out
    assert "Ketamine Group" in out and "Mayo Clinic" in out
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
    assert summary["studies_seen"] == 2 and summary["new_versions"] == 2
    assert {"published", "quarantined", "blocked"} <= summary.keys()
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
