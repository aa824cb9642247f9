"""The registry batch (expectations/sql/registry_candidates.sql) ranks only the versions of studies with
an undecided version, for speed: it must pick exactly what ranking every stored version picks."""
import datetime as dt
import json

import duckdb

from expectations.registry_gate import _read_sql
from schemas import apply_sql, ensure_base_schemas
from tests.conftest import CTGOV



def every_version(con) -> list[tuple]:
    """The batch's definition, in Python over every stored version: each study's current versions
    (latest update date, then version holder; a missing one ranks last; a version held in quarantine
    only when every version is; among ties, those of the latest run that landed one) that are
    undecided, with their place in the study's history (earliest first, missing dates first, then
    version key)."""
    rows = con.execute("SELECT version_key, nct_id, content_hash, last_update_post_date, version_holder, "
                       "run_id, ingested_at FROM raw.ctgov_study_version").fetchall()
    started: dict = {}
    for r in rows:
        started[r[5]] = min(started.get(r[5], r[6]), r[6])
    rows = [r[:5] + (started[r[5]],) for r in rows]
    decided = set(con.execute("SELECT nct_id, content_hash FROM meta.study_state").fetchall())
    held = set(con.execute("SELECT nct_id, content_hash FROM meta.study_state WHERE status = 'quarantined'").fetchall())
    studies: dict[str, list] = {}
    for row in rows:
        studies.setdefault(row[1], []).append(row)
    low = dt.date.min
    out = []
    for nct, versions in studies.items():
        history = sorted(versions, key=lambda v: (v[3] or low, v[4] or low, v[0]))
        ranking = [v for v in versions if (nct, v[2]) not in held] or versions
        def rank(v):
            return (v[3] is not None, v[3] or low, v[4] is not None, v[4] or low, v[5])

        top = max(rank(v) for v in ranking)
        for seq, v in enumerate(history, 1):
            if rank(v) == top and (nct, v[2]) not in decided:
                out.append((v[0], nct, seq))
    return sorted(out, key=lambda r: (r[1], r[0]))


def _version(con, nct: str, content: str, updated: str | None, holder: str | None = None, run: int = 0) -> None:
    payload = json.loads((CTGOV / "NCT06668571.json").read_text())
    payload["protocolSection"]["identificationModule"]["nctId"] = nct
    # run n: its own run id, landed on day n (a run's files a second apart each)
    con.execute("INSERT INTO raw.ctgov_study_version (nct_id, content_hash, last_update_post_date, version_holder, "
                "payload, source_file, source_record, file_sha256, ingested_at, run_id) VALUES (?, ?, ?, ?, ?, ?, '', ?, ?, ?)",
                [nct, content, updated, holder, json.dumps(payload), f"{nct}-{content}.json", content,
                 dt.datetime(2026, 11, 1 + run, 0, 0, len(content) % 60), f"r{run}"])


def _decided(con, nct: str, content: str, status: str) -> None:
    con.execute("INSERT INTO meta.study_state VALUES (?, ?, ?, 'r0', ?)", [nct, content, status, dt.datetime(2026, 11, 1)])


def test_candidates_are_those_of_ranking_every_version():
    con = duckdb.connect()
    ensure_base_schemas(con)
    apply_sql(con, "meta/meta.sql")
    # Published, then a newer version landed: the newer one, second in its study's history.
    _version(con, "NCT00000001", "a1", "2025-01-01")
    _version(con, "NCT00000001", "a2", "2025-06-01")
    _decided(con, "NCT00000001", "a1", "superseded")
    # Published and unchanged: nothing.
    _version(con, "NCT00000002", "b1", "2025-01-01")
    _decided(con, "NCT00000002", "b1", "published")
    # Two contents tied for current, neither decided: both (the gate quarantines the ambiguity).
    _version(con, "NCT00000003", "c1", "2025-03-01", "2025-03-02")
    _version(con, "NCT00000003", "c2", "2025-03-01", "2025-03-02")
    # An older version landed after the current one was published: undecided, but not current.
    _version(con, "NCT00000004", "d2", "2025-05-01")
    _version(con, "NCT00000004", "d1", "2024-05-01")
    _decided(con, "NCT00000004", "d2", "published")
    # The current version was quarantined: decided until released.
    _version(con, "NCT00000005", "e1", "2025-02-01")
    _decided(con, "NCT00000005", "e1", "quarantined")
    # A new study, and one with no update date (a field-projected page), ranked after dated versions.
    _version(con, "NCT00000006", "f1", None, "2025-07-01")
    _version(con, "NCT00000007", "g1", None)
    _version(con, "NCT00000007", "g2", "2025-01-01")
    _decided(con, "NCT00000007", "g1", "published")
    # A version held in quarantine (here its update date lay ahead) does not stay current: the next
    # version of the study is the batch's, though dated earlier.
    _version(con, "NCT00000008", "h1", "2025-01-01")
    _version(con, "NCT00000008", "h9", "2099-01-05")
    _version(con, "NCT00000008", "h2", "2025-06-01")
    _decided(con, "NCT00000008", "h1", "published")
    _decided(con, "NCT00000008", "h9", "quarantined")
    # Tied contents of different runs (i1 held, then released by a retry into the run of its correction
    # i2, the dates kept): the later run's alone. Two tied in that later run (j2, j3) are ambiguous.
    _version(con, "NCT00000009", "i1", "2025-03-01", "2025-03-02", run=1)
    _version(con, "NCT00000009", "i2", "2025-03-01", "2025-03-02", run=2)
    _version(con, "NCT00000010", "j1", "2025-03-01", "2025-03-02", run=1)
    _version(con, "NCT00000010", "j2", "2025-03-01", "2025-03-02", run=2)
    _version(con, "NCT00000010", "j3", "2025-03-01", "2025-03-02", run=2)

    expected = every_version(con)
    con.execute(_read_sql("registry_candidates.sql"))
    got = con.execute("SELECT version_key, nct_id, version_seq FROM stage.ctgov_candidate ORDER BY nct_id, version_key"
                      ).fetchall()
    assert got == expected
    assert [(n, s) for _, n, s in got] == [("NCT00000001", 2), ("NCT00000003", 1), ("NCT00000003", 2),
                                           ("NCT00000006", 1), ("NCT00000007", 2), ("NCT00000008", 2),
                                           ("NCT00000009", 2), ("NCT00000010", 2), ("NCT00000010", 3)]
