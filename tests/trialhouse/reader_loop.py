"""A stand-in analyst: queries the published warehouse in a loop until told to stop.

Every read checks that what it sees is one complete load: the table counts equal those that the
newest meta.load_log entry recorded for that publish.
"""
import json
import sys
import time
from pathlib import Path

import duckdb

path, stop_file, out_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
reads, errors, inconsistent, runs_seen = 0, [], [], set()
while not stop_file.exists():
    if not Path(path).exists():
        time.sleep(0.01)
        continue
    try:
        with duckdb.connect(path, read_only=True) as con:
            run_id, counts = con.execute(
                "SELECT run_id, table_counts FROM meta.load_log ORDER BY published_at DESC LIMIT 1"
            ).fetchone()
            for name, expected in json.loads(counts).items():
                schema, table = name.split(".")
                got = con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]
                if got != expected:
                    inconsistent.append(f"{run_id} {name}: {got} != {expected}")
            runs_seen.add(run_id)
        reads += 1
    except Exception as exc:  # any lock or read error is a failure of the promise
        errors.append(f"{type(exc).__name__}: {exc}")
out_file.write_text(json.dumps({"reads": reads, "errors": errors, "inconsistent": inconsistent,
                                "runs_seen": sorted(runs_seen)}))
