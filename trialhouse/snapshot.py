"""Readers are never blocked: the pipeline writes its own work file and publishes by atomically
replacing the file analysts open read-only.

DuckDB allows one writing process per file and a writer's lock also keeps other processes'
read-only connections out. So the pipeline owns `<name>.work.duckdb`; after each publish it
checkpoints (the WAL is folded into the file), copies the file next to the published one and
`os.replace`s it into place. A reader that opened the old file keeps reading the old inode, a
complete earlier load; the next connection sees the new one. Nobody ever sees half a load.
The cost is one file copy per publish (about 1 s per GB here); for a warehouse much larger than
memory bandwidth allows, DuckLake on a SQLite catalog is the documented next step.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def work_path(published: str | Path) -> Path:
    p = Path(published)
    return p.with_name(f"{p.stem}.work{p.suffix or '.duckdb'}")


def publish_snapshot(con, published: str | Path) -> Path:
    """Checkpoint the work database behind `con` and swap a copy of it in as `published`."""
    target = Path(published)
    source = Path(con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()[0])
    con.execute("CHECKPOINT")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, tmp)
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return target
