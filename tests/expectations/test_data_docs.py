"""Data Docs are kept for the newest runs only: a warehouse updated run after run must not fill its disk."""
import json
import os
import shutil
import uuid

from expectations.data_docs import SHARED_STATIC, own_static, prune_data_docs, share_static
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
                                                                 "notes", "README.txt", SHARED_STATIC])
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
    assert sorted(p.name for p in docs.iterdir()) == sorted(run_ids[1:] + [SHARED_STATIC])
    # the older kept run's static assets are the shared copy; the last run's stay its own until the next run
    older, last = docs / run_ids[1] / "static", docs / run_ids[2] / "static"
    assets = [p.relative_to(older) for p in older.rglob("*") if p.is_file()]
    assert len(assets) > 10 and sum((older / a).stat().st_size for a in assets) > 3_000_000
    assert all(os.path.samefile(older / a, docs / SHARED_STATIC / "static" / a) for a in assets)
    assert not any(os.path.samefile(last / a, older / a) for a in assets)
    assert all((last / a).read_bytes() == (older / a).read_bytes() for a in assets)


def _with_assets(runs, files: dict[str, bytes]) -> None:
    for run in runs:
        for name, data in files.items():
            (run / "static" / name).parent.mkdir(parents=True, exist_ok=True)
            (run / "static" / name).write_bytes(data)


def test_the_kept_runs_share_one_copy_of_their_static_assets_but_the_current_run_keeps_its_own(tmp_path):
    runs = _runs(tmp_path, 4)
    _with_assets(runs, {"style.css": b"body {}", "fonts/a.woff": b"\x00font" * 1000, "images/logo.png": b"png"})
    (runs[1] / "static" / "images" / "logo.png").write_bytes(b"another version's logo")
    (runs[2] / "static" / ".logo.png.link").write_bytes(b"left by a run that died")
    current = runs[3]

    removed, problems = prune_data_docs(tmp_path, keep=3, current=current.name)

    assert problems == [] and removed == [runs[0]]
    shared = tmp_path / SHARED_STATIC / "static"
    for run in runs[1:3]:
        assert os.path.samefile(run / "static" / "style.css", shared / "style.css")
        assert os.path.samefile(run / "static" / "fonts" / "a.woff", shared / "fonts" / "a.woff")
        assert (run / "static" / "fonts" / "a.woff").read_bytes() == b"\x00font" * 1000
    logos = [run / "static" / "images" / "logo.png" for run in runs[1:3]]
    assert not os.path.samefile(*logos)  # bytes differ: each keeps its own
    assert {p.read_bytes() for p in logos} == {b"png", b"another version's logo"}
    assert not (shared / ".logo.png.link").exists()
    assert not any(os.path.samefile(current / "static" / n, shared / n) for n in ("style.css", "fonts/a.woff"))
    assert prune_data_docs(tmp_path, keep=3, current=current.name) == ([], [])  # idempotent


def test_keeping_every_run_still_shares_their_assets(tmp_path):
    runs = _runs(tmp_path, 3)
    _with_assets(runs, {"style.css": b"body {}"})
    assert prune_data_docs(tmp_path, keep=0, current=runs[2].name) == ([], [])
    shared = tmp_path / SHARED_STATIC / "static" / "style.css"
    assert os.path.samefile(runs[0] / "static" / "style.css", shared)
    assert os.path.samefile(runs[1] / "static" / "style.css", shared)
    assert not os.path.samefile(runs[2] / "static" / "style.css", shared)


def test_a_shared_copy_no_run_uses_any_more_gives_way_to_a_newer_version(tmp_path):
    """After a great-expectations upgrade changed an asset, the old version's copy is replaced once the
    runs that linked it are gone, so the new version's copies are shared again."""
    old = _runs(tmp_path, 1)
    _with_assets(old, {"style.css": b"old"})
    share_static(tmp_path, old)
    shutil.rmtree(old[0])
    new = [tmp_path / str(uuid.UUID(int=100 + i)) for i in range(2)]
    for run in new:
        run.mkdir()
    _with_assets(new, {"style.css": b"new"})
    assert share_static(tmp_path, new) == []
    shared = tmp_path / SHARED_STATIC / "static" / "style.css"
    assert shared.read_bytes() == b"new"
    assert all(os.path.samefile(run / "static" / "style.css", shared) for run in new)


def test_a_run_gets_its_own_copies_back_before_great_expectations_rewrites_them(tmp_path):
    """With several runs at once, another run's prune can link this run's assets between its steps; the
    next build rewrites each asset in place (truncating it), which would write every run's copy."""
    runs = _runs(tmp_path, 3)
    _with_assets(runs, {"style.css": b"body {}", "fonts/a.woff": b"font"})
    share_static(tmp_path, runs)  # as a prune by another run does, this run's folder included
    mine, shared = runs[2] / "static", tmp_path / SHARED_STATIC / "static"
    assert os.path.samefile(mine / "style.css", shared / "style.css")

    own_static(runs[2])

    for name in ("style.css", "fonts/a.woff"):
        assert not os.path.samefile(mine / name, shared / name)
        assert (mine / name).read_bytes() == (shared / name).read_bytes()
        assert (mine / name).stat().st_nlink == 1
    (mine / "style.css").write_bytes(b"")  # what a build does first: the shared copy is not touched
    assert (shared / "style.css").read_bytes() == b"body {}"
    assert (runs[0] / "static" / "style.css").read_bytes() == b"body {}"
    assert not [p for p in mine.rglob(".*")]


def test_a_build_after_another_runs_prune_leaves_the_shared_copy_alone(tmp_path):
    """The runner's Data Docs build itself, with great-expectations writing the assets."""
    import pandas as pd

    from expectations.runtime import GxRunner, Rule

    docs = tmp_path / str(uuid.UUID(int=7))
    runner = GxRunner(docs)
    rule = Rule("non_null", "t", "x", "x", lambda g: g.expectations.ExpectColumnValuesToNotBeNull(column="x"))
    runner.validate("suite_one", [rule], {"t": pd.DataFrame({"k": ["a"], "x": [1]})}, key_columns=["k"])
    assets = [p for p in (docs / "static").rglob("*") if p.is_file()]
    assert len(assets) > 10
    assert share_static(tmp_path, [docs]) == []  # another run's prune, between this run's steps
    shared = {a: (tmp_path / SHARED_STATIC / a.relative_to(docs)) for a in assets}
    stamps = {a: shared[a].stat().st_mtime_ns for a in assets}

    runner.validate("suite_two", [rule], {"t": pd.DataFrame({"k": ["b"], "x": [2]})}, key_columns=["k"])

    assert all(shared[a].stat().st_mtime_ns == stamps[a] for a in assets)  # not written through a link
    assert not any(os.path.samefile(a, shared[a]) for a in assets)
    assert all(a.read_bytes() == shared[a].read_bytes() for a in assets)


def test_a_file_system_without_hard_links_keeps_the_copies_and_reports_it(tmp_path, monkeypatch):
    runs = _runs(tmp_path, 3)
    _with_assets(runs, {"style.css": b"body {}"})

    def refuse(src, dst, *a, **k):
        raise OSError(1, "Operation not permitted", str(dst))

    monkeypatch.setattr("expectations.data_docs.os.link", refuse)
    problems = share_static(tmp_path, runs)
    assert len(problems) == 1 and "Operation not permitted" in problems[0]
    assert all((r / "static" / "style.css").read_bytes() == b"body {}" for r in runs)
