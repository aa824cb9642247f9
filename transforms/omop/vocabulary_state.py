"""When to (re)load the vocabulary: only when its source changed, so a run does not reload
tens of millions of Athena rows for nothing."""
from __future__ import annotations

import hashlib
from pathlib import Path

from transforms.omop.vocabulary import DEMO_DIR


def fingerprint(directory: Path | None) -> str:
    """Names, sizes and modification times of the vocabulary files (the bundled demo when None)."""
    root = DEMO_DIR if directory is None else Path(directory)
    h = hashlib.sha256(("demo:" if directory is None else f"athena:{root.resolve()}:").encode())
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def ensure_state_table(con) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute(
        "CREATE TABLE IF NOT EXISTS meta.vocabulary_load (fingerprint VARCHAR NOT NULL, source VARCHAR NOT NULL, "
        "vocabulary_version VARCHAR, loaded_at TIMESTAMP NOT NULL, row_counts JSON NOT NULL)"
    )


def current_fingerprint(con) -> str | None:
    ensure_state_table(con)
    row = con.execute("SELECT fingerprint FROM meta.vocabulary_load ORDER BY loaded_at DESC LIMIT 1").fetchone()
    return row[0] if row else None
