"""Where a whole FHIR export writes its parts before they move in, and the sweep that follows its manifest
(transforms.fhir.export.export_ndjson): the previous export stands whole until the moves, and a staging
folder left behind says a sweep did not finish."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

STAGING = ".staging"  # under <out>/fhir/


def remove(path: Path) -> None:
    """Remove a file, a link or a folder tree at `path`, if any (rmtree refuses the first two)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def move_in(src: Path, dst: Path) -> None:
    """Move a staged part to its place, whole: a rename, or where the type's folder is a link to another
    file system, a copy beside the place renamed onto it."""
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        src.unlink()


def sweep(target: Path, manifest: dict) -> None:
    """Delete the part files the manifest does not list (the export before's, another layout's), then the
    staging folder. A whole export does this once its manifest is written; the staging folder still there
    says it did not finish, and the next export finishes it (whole or not): with the manifest already
    valid, the next exports were part by part, and nothing else deletes an unlisted file."""
    urls = {o["url"] for o in manifest["output"]}
    for old in [*target.glob("*.ndjson"), *target.glob("*/*.ndjson")]:
        if old.relative_to(target).as_posix() not in urls:
            old.unlink()
    remove(target / STAGING)
