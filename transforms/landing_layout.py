"""What the landing folder's layout leaves unread.

The scans read `<landing>/ctgov/` (any depth) and `<landing>/sites/<delivery id>/`. A file dropped
beside them (`<landing>/NCT01234567.json`, `<landing>/CTGOV/`, `<landing>/sites/delivery.zip`) was
passed over with nothing said: not landed, not failed, not counted. This names it.
"""
from __future__ import annotations

from pathlib import Path

from transforms.ctgov.ingest import CTGOV_SUBDIR, is_candidate
from transforms.sites.ingest import SITES_SUBDIR


def unread_paths(landing: Path) -> list[str]:
    """Landing-relative paths no step reads: entries at the top other than the `ctgov/` and `sites/`
    folders, and files directly under `sites/` (a delivery is a folder). Hidden and in-flight names
    are skipped, as the scans skip them; a folder is named with a trailing '/'."""
    if not landing.is_dir():
        return []
    out = [p.name + ("/" if p.is_dir() else "") for p in sorted(landing.iterdir())
           if is_candidate(p.name) and not (p.name in (CTGOV_SUBDIR, SITES_SUBDIR) and p.is_dir())]
    sites = landing / SITES_SUBDIR
    if sites.is_dir():
        out += [f"{SITES_SUBDIR}/{p.name}" for p in sorted(sites.iterdir()) if is_candidate(p.name) and not p.is_dir()]
    return out


def nested_deliveries(folder: Path) -> list[str]:
    """Subfolders of a folder under `sites/` that hold a manifest.json: deliveries one level too deep,
    which wait for a manifest.json of their parent's that never comes."""
    try:
        return sorted(p.parent.name for p in folder.glob("*/manifest.json") if is_candidate(p.parent.name))
    except OSError:
        return []
