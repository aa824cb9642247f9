"""`dg dev` with the repo's instance configuration: a file dropped in the landing folder is
published by the landing sensor and declarative automation alone, with no manual step."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb

from tests.conftest import CTGOV

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 180
PUBLISH_TIMEOUT = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def published_status(path: Path, nct_id: str):
    if not path.exists():
        return None
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            row = con.execute("SELECT status FROM meta.study_state WHERE nct_id = ?", [nct_id]).fetchone()
            return row[0] if row else None
    except duckdb.Error:
        return None


def test_landed_file_is_published_by_sensor_and_automation(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse.duckdb"
    (landing / "ctgov").mkdir(parents=True)
    port = free_port()
    env = dict(os.environ, DAGSTER_HOME=str(home), TRIALHOUSE_LANDING=str(landing),
               TRIALHOUSE_WAREHOUSE=str(warehouse), TRIALHOUSE_EXPORT=str(tmp_path / "exports"))
    log = (tmp_path / "dg_dev.log").open("w")
    dg = Path(sys.executable).with_name("dg")
    proc = subprocess.Popen([str(dg), "dev", "--host", "127.0.0.1", "--port", str(port)], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + STARTUP_TIMEOUT
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, f"dg dev exited early; see {log.name}"
                assert time.time() < deadline, f"dg dev did not answer within {STARTUP_TIMEOUT}s; see {log.name}"
                time.sleep(1)
        started = time.time()
        shutil.copy(CTGOV / "NCT06668571.json", landing / "ctgov" / "NCT06668571.json")
        while published_status(warehouse, "NCT06668571") != "published":
            assert time.time() - started < PUBLISH_TIMEOUT, (
                f"NCT06668571 was not published {PUBLISH_TIMEOUT}s after landing; the sensor or automation did not "
                f"run it through (dg dev log: {log.name})")
            time.sleep(1)
        latency = time.time() - started
        print(f"end-to-end latency (file landed -> queryable in the published warehouse): {latency:.1f} s")
        (tmp_path / "latency.json").write_text(json.dumps({"seconds": latency}))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
