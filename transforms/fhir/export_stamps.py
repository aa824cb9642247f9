"""What the FHIR export left on disk, so that it builds only on files it wrote itself.

Beside the manifest, `.parts.json` keeps the manifest's sha256 and each part's size and modification
time as the export left them. A part edited by hand since (its lines still adding up) would otherwise
stand until its studies changed, and a splice would then carry the edited line on; a manifest edited by
hand would carry its counts into every later manifest. A `stat` per part: ~22 ms at 600,000 studies
(3,909 parts).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import orjson

STAMPS = ".parts.json"


def manifest_is_stamped(target: Path, manifest_bytes: bytes) -> bool:
    """Whether these manifest bytes are the ones the export last wrote in `target`."""
    stamps = _read(target)
    return stamps is not None and stamps.get("manifest_sha256") == hashlib.sha256(manifest_bytes).hexdigest()


def changed_urls(target: Path, urls: Iterable[str]) -> set[str]:
    """The parts (manifest urls) whose size or modification time is not what the export left: edited,
    replaced or touched since, or gone."""
    stamps = (_read(target) or {}).get("parts", {})
    out = set()
    for url in urls:
        try:
            st = os.stat(target / url)
            same = stamps.get(url) == [st.st_size, st.st_mtime_ns]
        except OSError:
            same = False
        if not same:
            out.add(url)
    return out


def write_stamps(target: Path, manifest_bytes: bytes, urls: Iterable[str]) -> None:
    """Record the parts as they are now, for the manifest about to be written (before it: a run that
    dies between the two leaves stamps that do not match, and the next export is whole)."""
    parts = {}
    for url in sorted(urls):
        st = os.stat(target / url)
        parts[url] = [st.st_size, st.st_mtime_ns]
    tmp = target / f".{STAMPS}.tmp"
    tmp.write_bytes(orjson.dumps({"manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(), "parts": parts}))
    os.replace(tmp, target / STAMPS)


def _read(target: Path) -> dict | None:
    try:
        stamps = json.loads((target / STAMPS).read_bytes())
    except (OSError, ValueError):
        return None
    return stamps if isinstance(stamps, dict) and isinstance(stamps.get("parts"), dict) else None
