"""One run at a time per warehouse: a second run waits for the first instead of taking turns with it
step by step (which published one run's blocked batch with the other's publish)."""
import subprocess
import sys
import time

from tests.conftest import CTGOV
from trialhouse.runner import run_pipeline
from trialhouse.settings import Settings
from trialhouse.snapshot import work_path
from trialhouse.workfile import RunLock

HOLD = """
import sys, time
from trialhouse.workfile import RunLock
lock = RunLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
print(repr(time.time()), flush=True)
lock.release()
"""


def test_a_run_waits_for_the_run_holding_its_warehouse(tmp_path, landing):
    landing.drop(CTGOV / "NCT06668571.json")
    settings = Settings(str(tmp_path / "wh.duckdb"), str(landing.root), str(tmp_path / "exports"), None)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(work_path(settings.warehouse)), "4"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        report = run_pipeline(settings)
        released = float(holder.stdout.readline())
    finally:
        holder.wait(timeout=30)
    assert report.success, report.failures
    first_step = min(start for start, _ in report.step_windows.values())
    assert first_step >= released  # no step of this run ran while the other held the warehouse
    assert report.value("publish/warehouse", "studies_published") == 1


def test_the_lock_is_released_at_the_end_of_a_run_and_when_its_process_dies(tmp_path, landing):
    landing.drop(CTGOV / "NCT06668571.json")
    settings = Settings(str(tmp_path / "wh.duckdb"), str(landing.root), str(tmp_path / "exports"), None)
    assert run_pipeline(settings).success
    lock = RunLock(work_path(settings.warehouse))
    t = time.monotonic()
    lock.acquire()  # free again once the run ended
    lock.release()
    killed = subprocess.Popen([sys.executable, "-c", HOLD, str(work_path(settings.warehouse)), "60"],
                              stdout=subprocess.PIPE, text=True)
    assert killed.stdout.readline().strip() == "held"
    killed.kill()
    killed.wait(timeout=30)
    lock.acquire()
    lock.release()
    assert time.monotonic() - t < 30


def test_asking_whether_a_run_holds_the_lock_neither_takes_it_nor_makes_a_run_say_it_waits(tmp_path):
    """The landing sensor asks with a shared lock held for an instant: a run starting in that instant said
    another run (the pid an earlier run left in the file) was writing, and waited."""
    import fcntl
    import os
    import threading

    work = tmp_path / "wh.work.duckdb"
    assert RunLock.held(work) is False  # no lock file yet
    first = RunLock(work)
    first.acquire()
    assert RunLock.held(work) is True
    first.release()
    assert RunLock.held(work) is False

    fd = os.open(f"{work}.run.lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # as held() does, released 30 ms later
    threading.Timer(0.03, os.close, [fd]).start()
    said: list[str] = []
    run = RunLock(work)
    run.acquire(waiting=said.append)
    run.release()
    assert said == []
