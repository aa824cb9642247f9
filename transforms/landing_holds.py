"""Holds for what lies in the landing folder with nothing to read.

A file without read permission, a pipe, a folder that cannot be listed, a name that is not UTF-8: no
content to key a landed-file or delivery row by, so each run's log named it and `quarantine list` said
nothing was held while it sat unread. Each is held in quarantine.record as a path (record key `$`),
once however many runs find it so, until a run finds it readable, removed, or failing another way.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

_HELD = ("SELECT source_file, reason FROM quarantine.record WHERE suite = ? AND rule = ? "
         "AND record_key = '$' AND released_at IS NULL")
_RELEASE = ("UPDATE quarantine.record SET released_at = ? WHERE suite = ? AND rule = ? "
            "AND record_key = '$' AND released_at IS NULL AND source_file = ANY(?::VARCHAR[])")


def hold_unreadable(con, landing: Path, suite: str, rule: str, seen: list[str], unreadable: dict[str, str],
                    run_id: str | None, whole: bool) -> None:
    """`unreadable`: landing-relative path -> why, as this run found them among `seen`. A run over the
    whole landing folder (`whole`) decides every held path; one over some paths (a sensor's batch)
    decides those, and releases the held paths no longer there (removed, or a name put right: the
    sensor never names either), leaving the others' holds as they are."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    held = dict(con.execute(_HELD, [suite, rule]).fetchall())
    looked_at = set(seen) | set(unreadable)
    reason = {rel: f"{rel}: {why}" for rel, why in unreadable.items()}
    settled = [rel for rel, was in held.items()
               if reason.get(rel, was) != was  # fails another way now: held again with the new reason
               or (rel not in reason and (whole or rel in looked_at or not os.path.lexists(landing / _on_disk(rel))))]
    if settled:
        con.execute(_RELEASE, [now, suite, rule, settled])
    new = [(run_id, now, rel, "$", "", suite, rule, None, why, None, None)
           for rel, why in reason.items() if held.get(rel) != why]
    if new:
        con.executemany("INSERT INTO quarantine.record VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", new)


def _on_disk(rel: str) -> str:
    """A held path as the file system names it: the bytes that are not UTF-8, which messages show as
    \\xNN (transforms.ctgov.ingest.shown), back as the surrogates Python's file functions take."""
    return re.sub(r"\\x([89a-f][0-9a-f])", lambda m: chr(0xDC00 + int(m.group(1), 16)), rel)
