"""Keep the Data Docs of the newest runs only.

Every gated run writes a whole great-expectations site under `<export>/data_docs/<run id>/`: ~1 MB of
pages and ~4 MB of static assets (images, fonts, styles) whatever the batch, so a warehouse updated day
after day, or by a sensor many times a day, filled its disk by ~5 MB a run without end (25 runs: 131 MB).
The quarantine tables keep every held record's reason for good; the Data Docs are the browsable view of
recent runs, so the oldest run folders beyond a count are removed when a run starts validating.

Four of a site's ~5 MB are the same static assets in every run, so the kept runs' copies are then
hard-linked to one copy under `<data_docs>/.static/` (30 runs kept: ~160 MB -> ~40 MB). Only runs
other than the current one are linked, and a run gives its assets back their own copies before each
build (own_static; another run may have linked them between its steps): great-expectations rewrites
a run's assets in place on each build, and a rewrite through a link would write into every run's copy.
"""
from __future__ import annotations

import filecmp
import os
import re
import shutil
from pathlib import Path

# Dagster run ids: only folders named like one are ever removed, so nothing else put beside them is.
_RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SHARED_STATIC = ".static"  # beside the run folders: not a run id, so never pruned


def _written(folder: Path) -> float:
    """When a run's site was last written: its index page is rewritten by every suite of the run."""
    index = folder / "index.html"
    try:
        return max(folder.stat().st_mtime, index.stat().st_mtime if index.exists() else 0.0)
    except OSError:  # removed meanwhile
        return 0.0


def prune_data_docs(root: Path, keep: int, current: str | None = None) -> tuple[list[Path], list[str]]:
    """Remove the run folders under `root` beyond the `keep` newest, never the `current` run's.

    `keep` counts the current run's folder (it is the newest, or about to be); 0 keeps every run's.
    The kept runs other than the current one then share their static assets (share_static).
    Returns (folders removed, problems): a folder that cannot be removed is reported, not raised, so
    housekeeping never fails a run."""
    if not root.is_dir():
        return [], []
    runs = [p for p in root.iterdir() if p.is_dir() and _RUN_ID.match(p.name) and p.name != current]
    runs.sort(key=lambda p: (_written(p), p.name), reverse=True)
    kept = runs[:max(0, keep - 1 if current else keep)] if keep > 0 else runs
    removed, problems = [], []
    for old in runs[len(kept):]:
        try:
            shutil.rmtree(old)
            removed.append(old)
        except FileNotFoundError:  # removed meanwhile by another step's process (multiprocess executor)
            continue
        except OSError as exc:
            problems.append(f"{old}: {exc.strerror or exc}")
    return removed, problems + share_static(root, kept)


def share_static(root: Path, runs: list[Path]) -> list[str]:
    """Hard-link each finished run's static assets to one copy under `<root>/.static/`; returns problems.

    A file already linked costs a stat; one whose bytes differ from the shared copy (another
    great-expectations version's) keeps its own, or becomes the shared copy once no run links to the
    old one. A file system without hard links gets one problem reported and the copies stay as they
    are: this only saves space, it never fails a run."""
    shared_root = root / SHARED_STATIC
    for run in runs:
        try:
            paths = sorted((run / "static").rglob("*"))
        except FileNotFoundError:  # its run removed meanwhile by another step's process
            continue
        for path in paths:
            shared = shared_root / path.relative_to(run)
            try:
                if path.name.startswith(".") or path.is_symlink() or not path.is_file():
                    continue  # hidden: a link of ours left by a run that died, not an asset
                if not shared.exists():
                    shared.parent.mkdir(parents=True, exist_ok=True)
                    os.link(path, shared)
                    continue
                if os.path.samefile(path, shared):
                    continue
                if filecmp.cmp(path, shared, shallow=False):
                    _link(shared, path)
                elif shared.stat().st_nlink == 1:  # an older version's copy no run uses any more
                    _link(path, shared)
            except FileExistsError:  # another process made the shared copy meanwhile
                continue
            except FileNotFoundError:  # its run removed meanwhile by another step's process
                continue
            except OSError as exc:
                return [f"could not share the static assets of {run.name}: {exc.strerror or exc}"]
    return []


def own_static(run: Path) -> None:
    """Give a run's static assets back their own copies before great-expectations writes them again.

    It rewrites every asset in place on each build (open for writing, truncating), so a file another
    run's prune linked to the shared copy between this run's steps would be emptied and rewritten in
    every run's folder at once, and left broken in all of them by a build that died midway. Builds
    and prunes only run in the warehouse pool's steps, one at a time, so none can link it meanwhile."""
    for path in sorted((run / "static").rglob("*")) if (run / "static").is_dir() else []:
        if not path.name.startswith(".") and path.is_file() and not path.is_symlink() and path.stat().st_nlink > 1:
            tmp = path.with_name(f".{path.name}.own")
            shutil.copyfile(path, tmp)
            os.replace(tmp, path)


def _link(src: Path, dst: Path) -> None:
    """Make `dst` another name of `src`'s file, atomically."""
    tmp = dst.with_name(f".{dst.name}.link")
    tmp.unlink(missing_ok=True)
    os.link(src, tmp)
    os.replace(tmp, dst)
