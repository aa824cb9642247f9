"""`trialhouse quarantine list | retry` after a fix upstream."""
import json

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
    # narrowed, it says what it looked for: "nothing is held" read as if the whole quarantine were empty
    assert main(["quarantine", "list", *args(landing, tmp_path), "--nct", "NCT00000000", "--rule", "x"]) == 0
    assert "nothing held in quarantine matches --nct NCT00000000 --rule x" in capsys.readouterr().out
