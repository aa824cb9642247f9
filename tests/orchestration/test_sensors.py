"""The landing sensor against a temporary landing folder."""
import time

import dagster as dg

from orchestration.definitions import build_definitions
from orchestration.sensors import landing_sensor
from tests.conftest import CTGOV
from trialhouse.settings import Settings
from transforms.ctgov import landing_scan


def evaluate(landing_root, tmp_path, cursor=None):
    resources = {"paths": build_definitions(Settings(str(tmp_path / "w.duckdb"), str(landing_root), str(tmp_path / "x"), None)).resources["paths"]}
    with dg.build_sensor_context(cursor=cursor, resources=resources) as ctx:
        result = landing_sensor(ctx)
    if isinstance(result, dg.SkipReason):
        return [], cursor
    return result.run_requests or [], result.cursor


def test_new_files_give_runs_second_evaluation_none_changed_file_one(tmp_path, landing, monkeypatch):
    monkeypatch.setattr("orchestration.sensors.scan_since",
                        lambda root, sub, cur, **kw: landing_scan.scan_since(root, sub, cur, settle_ns=0, **kw))
    a = landing.drop(CTGOV / "NCT06668571.json")
    landing.drop(CTGOV / "NCT00184067.json", subdir="deep/er")
    runs, cursor = evaluate(landing.root, tmp_path)
    assert len(runs) == 1
    files = runs[0].run_config["ops"]["raw__ctgov_study_version"]["config"]["files"]
    assert sorted(files) == ["ctgov/NCT06668571.json", "ctgov/deep/er/NCT00184067.json"]
    assert runs[0].asset_selection == [dg.AssetKey(["raw", "ctgov_study_version"])]

    again, cursor2 = evaluate(landing.root, tmp_path, cursor)
    assert again == [] and cursor2 == cursor

    time.sleep(0.01)
    a.write_bytes((CTGOV / "NCT03418623.json").read_bytes())
    changed, cursor3 = evaluate(landing.root, tmp_path, cursor)
    assert len(changed) == 1
    assert changed[0].run_config["ops"]["raw__ctgov_study_version"]["config"]["files"] == ["ctgov/NCT06668571.json"]
    assert changed[0].run_key != runs[0].run_key


def test_same_evaluation_twice_gives_same_run_keys(tmp_path, landing, monkeypatch):
    monkeypatch.setattr("orchestration.sensors.scan_since",
                        lambda root, sub, cur, **kw: landing_scan.scan_since(root, sub, cur, settle_ns=0, **kw))
    landing.drop(CTGOV / "NCT06668571.json")
    r1, _ = evaluate(landing.root, tmp_path)
    r2, _ = evaluate(landing.root, tmp_path)
    assert [r.run_key for r in r1] == [r.run_key for r in r2]


def test_burst_is_batched_and_cursor_stays_small(tmp_path, landing, monkeypatch):
    monkeypatch.setattr("orchestration.sensors.scan_since",
                        lambda root, sub, cur, **kw: landing_scan.scan_since(root, sub, cur, settle_ns=0, **kw))
    src = (CTGOV / "NCT06668571.json").read_bytes()
    for i in range(5000):
        landing.write(f"burst/{i:05d}.json", src)
    runs, cursor = evaluate(landing.root, tmp_path)
    assert len(runs) == 10
    assert sum(len(r.run_config["ops"]["raw__ctgov_study_version"]["config"]["files"]) for r in runs) == 5000
    assert len(cursor) < 150  # a timestamp per landing folder, and the one folder: not the 5,000 files
    assert evaluate(landing.root, tmp_path, cursor)[0] == []


def test_unsettled_files_wait_for_next_tick(tmp_path, landing):
    landing.drop(CTGOV / "NCT06668571.json")
    runs, cursor = evaluate(landing.root, tmp_path)  # just written: inside the settle time
    assert runs == []


def test_run_config_is_valid_for_the_asset_job(tmp_path, landing, monkeypatch):
    monkeypatch.setattr("orchestration.sensors.scan_since",
                        lambda root, sub, cur, **kw: landing_scan.scan_since(root, sub, cur, settle_ns=0, **kw))
    landing.drop(CTGOV / "NCT06668571.json")
    runs, _ = evaluate(landing.root, tmp_path)
    defs = build_definitions(Settings(str(tmp_path / "w.duckdb"), str(landing.root), str(tmp_path / "x"), None))
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(runs[0].asset_selection))
    result = job.execute_in_process(run_config=runs[0].run_config, raise_on_error=True)
    assert result.success


def test_large_zip_gets_a_run_of_its_own():
    seen = [landing_scan.Seen(f"ctgov/{i}.json", 10, i) for i in range(3)]
    big = landing_scan.Seen("ctgov/all.zip", 10 * 1024**3, 5)
    assert [len(b) for b in landing_scan.batches(seen[:2] + [big] + seen[2:])] == [2, 1, 1]


def test_site_delivery_folder_gives_one_run_for_the_folder(tmp_path, landing, monkeypatch):
    from trialhouse.synth_site import generate_delivery

    monkeypatch.setattr("orchestration.sensors.scan_since",
                        lambda root, sub, cur, **kw: landing_scan.scan_since(root, sub, cur, settle_ns=0, **kw))
    (folder,) = generate_delivery(landing.root / "sites", participants=4, sites=1, seed=3)
    runs, cursor = evaluate(landing.root, tmp_path)
    assert len(runs) == 1
    assert runs[0].asset_selection == [dg.AssetKey(["raw", "site_delivery"])]
    assert runs[0].run_config == {"ops": {"raw__site_delivery": {"config": {"deliveries": [folder.name]}}}}
    assert evaluate(landing.root, tmp_path, cursor)[0] == []


def test_a_landing_folder_that_is_not_there_is_a_skip_that_names_it(tmp_path):
    missing = tmp_path / "not-mounted"
    resources = {"paths": build_definitions(Settings(str(tmp_path / "w.duckdb"), str(missing), str(tmp_path / "x"), None)).resources["paths"]}
    with dg.build_sensor_context(cursor=None, resources=resources) as ctx:
        result = landing_sensor(ctx)
    assert isinstance(result, dg.SkipReason)
    assert str(missing) in result.skip_message and "TRIALHOUSE_LANDING" in result.skip_message
    missing.mkdir()  # once it is there, the sensor scans it as usual
    with dg.build_sensor_context(cursor=None, resources=resources) as ctx:
        result = landing_sensor(ctx)  # a skip that writes the cursor's first state
        assert result.skip_reason.skip_message == "no new or changed landing files" and not result.run_requests


def test_a_folder_moved_in_gives_a_run_though_its_files_are_old(tmp_path, landing, monkeypatch):
    """`mv ~/downloads/batch <landing>/ctgov/`: a rename keeps every time of the files in it, which the
    cursor had passed, so the sensor never asked for them and only the next full run read them. A folder
    the last evaluation did not see counts from when it arrived, its subfolders with it, once."""
    import json
    import os

    monkeypatch.setattr("orchestration.sensors.scan_since",
                        lambda root, sub, cur, **kw: landing_scan.scan_since(root, sub, cur, settle_ns=0, **kw))
    batch = tmp_path / "downloads" / "batch"
    (batch / "more").mkdir(parents=True)
    (batch / "a.json").write_bytes((CTGOV / "NCT00184067.json").read_bytes())
    (batch / "more" / "b.json").write_bytes((CTGOV / "NCT00276835.json").read_bytes())
    time.sleep(0.01)
    landing.drop(CTGOV / "NCT06668571.json", subdir="mirror")
    runs, cursor = evaluate(landing.root, tmp_path)
    assert len(runs) == 1
    assert json.loads(cursor)["ctgov/folders"]  # the mirror, by device and inode

    os.rename(batch, landing.root / "ctgov" / "batch")
    runs, cursor = evaluate(landing.root, tmp_path, cursor)
    assert [r.run_config["ops"]["raw__ctgov_study_version"]["config"]["files"] for r in runs] == [
        ["ctgov/batch/a.json", "ctgov/batch/more/b.json"]]
    assert evaluate(landing.root, tmp_path, cursor)[0] == []

    # moved within (a folder one level too deep put right): the same folder, at a path not seen before
    os.rename(landing.root / "ctgov" / "batch" / "more", landing.root / "ctgov" / "more")
    runs, cursor = evaluate(landing.root, tmp_path, cursor)
    assert [r.run_config["ops"]["raw__ctgov_study_version"]["config"]["files"] for r in runs] == [["ctgov/more/b.json"]]

    # a link pointed elsewhere (`rm current; ln -s b2 current` may give the new link the old one's inode)
    b1, b2 = tmp_path / "dl" / "b1", tmp_path / "dl" / "b2"
    b1.mkdir(parents=True)
    b2.mkdir()
    (b2 / "c.json").write_bytes((CTGOV / "NCT03418623.json").read_bytes())
    time.sleep(0.01)
    (landing.root / "ctgov" / "current").symlink_to(b1, target_is_directory=True)
    assert evaluate(landing.root, tmp_path, cursor)[0] == []  # an empty folder linked in: nothing to read
    _, cursor = evaluate(landing.root, tmp_path, cursor)
    (landing.root / "ctgov" / "current").unlink()
    (landing.root / "ctgov" / "current").symlink_to(b2, target_is_directory=True)
    runs, cursor = evaluate(landing.root, tmp_path, cursor)
    assert [r.run_config["ops"]["raw__ctgov_study_version"]["config"]["files"] for r in runs] == [["ctgov/current/c.json"]]

    # a cursor from before the folders were kept: nothing is requested again, and it learns them
    old = {k: v for k, v in json.loads(cursor).items() if not k.endswith("/folders")}
    runs, upgraded = evaluate(landing.root, tmp_path, json.dumps(old))
    assert runs == [] and sorted(json.loads(upgraded)["ctgov/folders"]) == ["batch", "current", "mirror", "more"]
    assert evaluate(landing.root, tmp_path, upgraded) == ([], upgraded)  # a plain skip: nothing to write


def test_folders_renamed_or_linked_in_give_runs_though_their_files_are_old(tmp_path, landing, monkeypatch):
    """A site's `<id>.partial` renamed to `<id>` (the contract's own way to deliver) and a download folder
    linked into ctgov/: their files keep their times, which the cursor had passed, and no run was ever
    requested for them. A chmod, or a folder's mtime set back (`rsync -a`), re-requests nothing else."""
    import os
    import shutil

    from trialhouse.synth_site import generate_delivery

    monkeypatch.setattr("orchestration.sensors.scan_since",
                        lambda root, sub, cur, **kw: landing_scan.scan_since(root, sub, cur, settle_ns=0, **kw))
    (landing.root / "sites").mkdir()
    landing.drop(CTGOV / "NCT06668571.json", subdir="mirror")
    (partial,) = generate_delivery(landing.root / "sites", participants=4, sites=1, seed=3, delivery_id="d1.partial")
    outside = tmp_path / "downloads" / "linked"
    outside.mkdir(parents=True)
    shutil.copy(CTGOV / "NCT00184067.json", outside / "linked.json")
    runs, cursor = evaluate(landing.root, tmp_path)
    # the in-flight folder is not a delivery yet
    assert [r.run_config["ops"].get("raw__site_delivery") for r in runs] == [None]
    time.sleep(0.01)
    assert evaluate(landing.root, tmp_path, cursor)[0] == []  # the cursor is past every file's time

    partial.rename(landing.root / "sites" / "d1")
    (landing.root / "ctgov" / "linked").symlink_to(outside, target_is_directory=True)
    mirror = landing.root / "ctgov" / "mirror"
    os.chmod(mirror, 0o750)
    new = landing.drop(CTGOV / "NCT00276835.json", subdir="mirror")
    os.utime(mirror, ns=(0, 10**9))  # as rsync -a sets a folder's time back after adding to it
    runs, cursor = evaluate(landing.root, tmp_path, cursor)
    configs = [r.run_config["ops"] for r in runs]
    assert {"raw__site_delivery": {"config": {"deliveries": ["d1"]}}} in configs
    assert sorted(f for c in configs for f in c.get("raw__ctgov_study_version", {}).get("config", {}).get("files", [])) == [
        "ctgov/linked/linked.json", f"ctgov/mirror/{new.name}"]
    assert evaluate(landing.root, tmp_path, cursor)[0] == []  # once


def test_a_publish_a_dead_run_owes_gets_a_run_when_no_run_holds_the_warehouse(tmp_path, landing):
    """The next run finishes an owed publish first thing, but under the sensor a next run came only when
    another file landed: the export could hold a publish the analysts' file did not until then."""
    from trialhouse.snapshot import mark_owed, work_path
    from trialhouse.workfile import RunLock

    published = tmp_path / "w.duckdb"
    assert evaluate(landing.root, tmp_path)[0] == []  # nothing landed, nothing owed
    mark_owed(published)
    lock = RunLock(work_path(published))
    lock.acquire()  # a run is publishing: the marker is its own
    try:
        assert evaluate(landing.root, tmp_path)[0] == []
    finally:
        lock.release()

    runs, _ = evaluate(landing.root, tmp_path)  # the run died: nobody holds the lock

    assert len(runs) == 1 and runs[0].run_key.startswith("finish-owed-publish:")
    assert runs[0].asset_selection == [dg.AssetKey(["raw", "ctgov_study_version"])]
    assert runs[0].run_config["ops"]["raw__ctgov_study_version"]["config"]["files"] == []
    assert [r.run_key for r in evaluate(landing.root, tmp_path)[0]] == [runs[0].run_key]  # one per marker
    time.sleep(0.01)
    mark_owed(published)  # the finishing run sets it again before its export, and dies there too
    assert [r.run_key for r in evaluate(landing.root, tmp_path)[0]] == [runs[0].run_key]  # no new run, every 5 s
