"""Readers are never blocked: a separate process reads the published warehouse while loads run."""
import json
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import study_files
from trialhouse.runner import run_pipeline
from trialhouse.settings import Settings


def test_reader_never_errors_and_always_sees_a_complete_load(tmp_path, landing):
    settings = Settings(str(tmp_path / "wh.duckdb"), str(landing.root), str(tmp_path / "exports"), None)
    files = study_files()
    landing.drop(files[0])
    assert run_pipeline(settings).success  # a first publish for the reader to open
    stop, out = tmp_path / "stop", tmp_path / "reader.json"
    reader = subprocess.Popen([sys.executable, str(Path(__file__).with_name("reader_loop.py")),
                               settings.warehouse, str(stop), str(out)])
    try:
        run_ids = []
        for i in range(5):
            for p in files[1 + i * 5: 6 + i * 5]:
                landing.drop(p)
            report = run_pipeline(settings)
            assert report.success, report.failures
            run_ids.append(report.run_id)
            time.sleep(0.2)  # let the reader see each publish
    finally:
        stop.touch()
        reader.wait(timeout=60)
    result = json.loads(out.read_text())
    assert result["errors"] == [] and result["inconsistent"] == []
    assert result["reads"] > 5
    assert set(result["runs_seen"]) & set(run_ids), "the reader never saw any of the five loads"
