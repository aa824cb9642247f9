"""Data Docs are kept for the newest runs only: a warehouse updated run after run must not fill its disk."""
import json
import os
import uuid

from expectations.data_docs import prune_data_docs
from tests.conftest import CTGOV
from trialhouse.runner import run_pipeline
from trialhouse.settings import ENV_DATA_DOCS_KEEP, Settings


def _runs(root, n):
    """n run folders, each with an index page, written one second apart (oldest first)."""
    out = []
    for i in range(n):
        folder = root / str(uuid.UUID(int=i + 1))
        (folder / "static").mkdir(parents=True)
        (folder / "index.html").write_text("<html/>")
        (folder / "static" / "style.css").write_text("")
        os.utime(folder / "index.html", (1_700_000_000 + i, 1_700_000_000 + i))
        os.utime(folder, (1_700_000_000 + i, 1_700_000_000 + i))
        out.append(folder)
    return out


def test_the_newest_runs_stay_and_the_current_run_is_never_removed(tmp_path):
    runs = _runs(tmp_path, 6)
    (tmp_path / "notes").mkdir()  # not a run's folder: left alone whatever its age
    (tmp_path / "README.txt").write_text("mine")
    removed, problems = prune_data_docs(tmp_path, keep=3, current=runs[0].name)  # the oldest is this run's
    assert problems == []
    assert sorted(removed) == sorted(runs[1:4])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([runs[0].name, runs[4].name, runs[5].name,
                                                                 "notes", "README.txt"])
    assert prune_data_docs(tmp_path, keep=3, current=runs[0].name) == ([], [])  # idempotent


def test_a_run_rewriting_its_index_counts_as_new(tmp_path):
    runs = _runs(tmp_path, 3)
    os.utime(runs[0] / "index.html", (1_800_000_000, 1_800_000_000))  # the oldest folder, rewritten last
    removed, _ = prune_data_docs(tmp_path, keep=2)
    assert removed == [runs[1]]


def test_keep_zero_keeps_every_run_and_a_missing_folder_is_nothing_to_do(tmp_path):
    runs = _runs(tmp_path, 4)
    assert prune_data_docs(tmp_path, keep=0, current=runs[0].name) == ([], [])
    assert all(r.exists() for r in runs)
    assert prune_data_docs(tmp_path / "absent", keep=1) == ([], [])


def test_a_folder_that_cannot_be_removed_is_reported_not_raised(tmp_path, monkeypatch):
    runs = _runs(tmp_path, 3)

    def refuse(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("expectations.data_docs.shutil.rmtree", refuse)
    removed, problems = prune_data_docs(tmp_path, keep=1)
    assert removed == [] and len(problems) == 2 and all("Permission denied" in p for p in problems)
    assert all(r.exists() for r in runs)


def test_a_folder_another_process_removed_meanwhile_is_no_problem(tmp_path, monkeypatch):
    runs = _runs(tmp_path, 3)

    def gone(path, *a, **k):
        raise FileNotFoundError(2, "No such file or directory", str(path))

    monkeypatch.setattr("expectations.data_docs.shutil.rmtree", gone)
    assert prune_data_docs(tmp_path, keep=1) == ([], [])


def test_runs_of_the_pipeline_keep_only_the_newest_runs_docs(tmp_path, monkeypatch):
    """Three runs, each with a new version of the seed study to validate, keeping two runs' Data Docs."""
    monkeypatch.setenv(ENV_DATA_DOCS_KEEP, "2")
    landing = tmp_path / "landing" / "ctgov"
    landing.mkdir(parents=True)
    record = json.loads((CTGOV / "NCT06668571.json").read_bytes())
    settings = Settings(str(tmp_path / "wh.duckdb"), str(tmp_path / "landing"), str(tmp_path / "exports"), None)
    docs = tmp_path / "exports" / "data_docs"
    run_ids = []
    for day in (1, 2, 3):
        if day > 1:
            record["protocolSection"]["identificationModule"]["briefTitle"] += f" (amended on day {day})"
            record["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {
                "date": f"2026-11-0{day}", "type": "ACTUAL"}
        (landing / f"NCT06668571-day{day}.json").write_text(json.dumps(record))
        report = run_pipeline(settings)
        assert report.success, report.failures
        assert report.metadata["stage/ctgov_study"]["staged"] == 1  # each run validated something
        run_ids.append(report.run_id)
        assert (docs / report.run_id / "index.html").exists()
    assert sorted(p.name for p in docs.iterdir()) == sorted(run_ids[1:])
