"""Keep the Data Docs of the newest runs only.

Every gated run writes a whole great-expectations site under `<export>/data_docs/<run id>/`: ~1 MB of
pages and ~4 MB of static assets (images, fonts, styles) whatever the batch, so a warehouse updated day
after day, or by a sensor many times a day, filled its disk by ~5 MB a run without end (25 runs: 131 MB).
The quarantine tables keep every held record's reason for good; the Data Docs are the browsable view of
recent runs, so the oldest run folders beyond a count are removed when a run starts validating.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

# Dagster run ids: only folders named like one are ever removed, so nothing else put beside them is.
_RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


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
    Returns (folders removed, problems): a folder that cannot be removed is reported, not raised, so
    housekeeping never fails a run."""
    if keep <= 0 or not root.is_dir():
        return [], []
    runs = [p for p in root.iterdir() if p.is_dir() and _RUN_ID.match(p.name) and p.name != current]
    runs.sort(key=lambda p: (_written(p), p.name), reverse=True)
    removed, problems = [], []
    for old in runs[max(0, keep - 1 if current else keep):]:
        try:
            shutil.rmtree(old)
            removed.append(old)
        except FileNotFoundError:  # removed meanwhile by another step's process (multiprocess executor)
            continue
        except OSError as exc:
            problems.append(f"{old}: {exc.strerror or exc}")
    return removed, problems
