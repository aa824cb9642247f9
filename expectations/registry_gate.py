"""Stage the registry batch of a run through suite `ctgov_registry`.

Record-level failures send the offending study version to quarantine.record (file, record, rule,
field, reason, payload) and the rest go on to stage.ctgov_study for mapping; batch-level failures
(schema drift) are recorded for the blocking asset check to act on.
"""
from __future__ import annotations

import datetime as dt
import multiprocessing
import warnings
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import pandas as pd

from expectations.quarantine import mark_state, write_quarantine, write_rule_results
from expectations.runtime import (GxRunner, SuiteResult, chunked, fold_result, in_order, key_range, merge_results,
                                  now_utc, release_memory)
from expectations.suites.ctgov_registry import SUITE, rules
from schemas import apply_sql, ensure_base_schemas
from transforms.ctgov.flatten import KEYS, registry_frames
from transforms.ctgov.records import parse_payload
from trialhouse.settings import registry_chunk, stage_workers


@dataclass
class StageResult:
    candidates: int
    staged: int
    quarantined: int
    suite: SuiteResult


def _field(rule, row: dict) -> str:
    """The exact JSON path: long frames carry the repeated element's own path (locations[3])."""
    if rule.frame in ("study", "section"):
        return row.get("field") or rule.field if rule.frame == "section" else rule.field
    base = row.get("field") or rule.field
    if rule.frame in ("phase", "arm_intervention", "shape"):
        return base
    suffix = rule.field if rule.field.startswith("geoPoint") else rule.column
    return f"{base}.{suffix}"


def _reason(rule, row: dict, field: str) -> str:
    where = f"{row.get('source_file')} record {row.get('nct_id')}"
    if row.get("source_record"):
        where += f" ({row['source_record']})"
    value = row.get("name") if rule.frame == "arm_intervention" else row.get(rule.column)
    shown = "" if rule.message.startswith("is missing") else f" = {_plain(value)!r}"
    return f"{where}: {field}{shown} {rule.message}"


def _plain(value):
    if isinstance(value, dt.date):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def stage_registry(con, runner: GxRunner, run_id: str, chunk: int | None = None,
                   workers: int | None = None) -> StageResult:
    """Validate the run's candidates `chunk` studies at a time (memory flat in the batch size).

    Records are parsed and flattened in `workers` processes when the batch is larger than a slice:
    that was half the stage's time in the run process, while DuckDB's reads and GX's run are the rest."""
    ensure_base_schemas(con)
    apply_sql(con, "meta/meta.sql")
    con.execute(_read_sql("registry_candidates.sql"))
    con.execute("DROP TABLE IF EXISTS stage.ctgov_candidate_gated")  # a crashed run's
    con.execute(_read_sql("registry_staged.sql"))
    ncts = _candidate_ncts(con)
    reasons: dict[str, list[str]] = {}
    merged, candidates, staged, held = None, 0, 0, 0
    workers = workers or stage_workers()
    with ExitStack() as stack:
        pool = None
        if workers > 1 and len(ncts) > FLATTEN_SLICE:
            ctx = multiprocessing.get_context("spawn")  # no fork of a process holding DuckDB's threads
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=ctx))
        # GX validates a chunk in this thread while the run process reads and the workers flatten the
        # next one: they sat idle through each chunk's GX run (~1.5 s per 20,000 studies). Only the
        # run process's own thread touches `con`; the chunk's results are written there, in order.
        gx = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="registry-gx")) if pool else None
        validating = None  # the chunk being validated: (future of its result, the chunk)

        def finish():
            nonlocal merged, candidates, staged, held, validating
            result, n_rows, n_held = _write(con, run_id, *validating, reasons)
            validating = None
            merged = fold_result(merged, result)
            candidates, staged, held = candidates + n_rows, staged + n_rows - n_held, held + n_held

        first, gated = True, False
        while ncts or first:  # an empty batch is one empty chunk, so the suite still runs (runtime.chunked)
            held_before, first = held, False
            for part in chunked(ncts, chunk or registry_chunk()):
                collected = _collect(con, part, pool, workers)
                if validating is not None:
                    finish()
                validating = (_validate(runner, collected, gx), collected)
                del collected
                if gx is None:  # one process: nothing to overlap, so write before reading the next chunk
                    finish()
                release_memory()
            if validating is not None:
                finish()
            if held == held_before:
                break
            # A version held may leave an older one of its study current (current is among the versions
            # not held), never decided when both landed together: it is gated in this run too. It waited
            # for a next run, which a sensor starts only when another file lands (a fuzzing review).
            # The rounds' candidates are put back together after the last, for the gate's share of held.
            con.execute("INSERT INTO stage.ctgov_candidate_gated FROM stage.ctgov_candidate" if gated else
                        "CREATE TABLE stage.ctgov_candidate_gated AS FROM stage.ctgov_candidate")
            gated = True
            con.execute(_read_sql("registry_candidates.sql"))
            con.execute("DELETE FROM stage.ctgov_candidate WHERE nct_id IN (SELECT nct_id FROM stage.ctgov_study)")
            ncts = _candidate_ncts(con)
        if gated:
            con.execute("INSERT INTO stage.ctgov_candidate FROM stage.ctgov_candidate_gated")
            con.execute("DROP TABLE stage.ctgov_candidate_gated")
    result = merge_results(SUITE, [merged] if merged is not None else [], runner.build_docs())
    write_rule_results(con, run_id, result, reasons)
    return StageResult(candidates, staged, held, result)


def _candidate_ncts(con) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT nct_id FROM stage.ctgov_candidate ORDER BY 1").fetchall()]


# Studies whose payloads one query reads. They are put in NCT id order here, not by an ORDER BY:
# DuckDB sorted the payloads with the rows, which took ~2.5 times their bytes of its pool (measured;
# a whole 20,000-study chunk, ~320 MB of JSON, ran the 600,000-study registry out of the 512 MB cap),
# and a query per 1,000 studies cost ~25 ms of overhead each. Unsorted, DuckDB holds one slice's
# result (~80 MB at the registry's mean size) and Python the same while it is parsed.
PAYLOAD_SLICE = 5000  # payloads come as UTF-8 bytes: see fhir_gate._SELECT
# Studies a worker parses and flattens at a time: a fifth of a query's slice, so the slices in flight
# (workers + 1) hold less than the query's result.
FLATTEN_SLICE = 1000
_PAYLOADS = ("SELECT c.version_key, c.nct_id, c.source_file, c.source_record, c.content_hash, encode(v.payload)"
             " FROM stage.ctgov_candidate c JOIN raw.ctgov_study_version v USING (version_key)"
             " WHERE c.nct_id BETWEEN ? AND ?")


def flatten_slice(rows: list[tuple]) -> tuple[dict[str, pd.DataFrame], list[dict]]:
    """Parse and flatten payload rows (version_key, nct_id, source_file, source_record, content_hash,
    payload) already in NCT id order: pure, so it runs in a worker. Returns the suite's frames and each
    version's keys.

    Payloads are parsed one at a time while flattening (a parsed study takes ~10x its JSON) and freed
    once parsed; only what the rules look at stays."""
    keys: list[dict] = []

    def streamed():
        for i, (key, nct_id, src, rec, chash, payload) in enumerate(rows):
            rows[i] = None
            b = {"version_key": key, "nct_id": nct_id, "source_file": src, "source_record": rec,
                 "content_hash": chash}
            keys.append(b)
            yield {**b, "record": parse_payload(payload)}

    return registry_frames(streamed()), keys


def _slices(con, ncts: list[str]) -> Iterator[list[tuple]]:
    """The chunk's payload rows in NCT id order (then version key), FLATTEN_SLICE studies' worth at a time."""
    for part in chunked(ncts, PAYLOAD_SLICE):
        rows = con.execute(_PAYLOADS, key_range(part)).fetchall()
        rows.sort(key=itemgetter(1, 0))  # NCT id, then version key
        while rows:
            yield rows[:FLATTEN_SLICE]
            del rows[:FLATTEN_SLICE]


def _flattened(con, ncts: list[str], pool: Executor | None, workers: int) -> Iterator[tuple[dict, list[dict]]]:
    """flatten_slice of each slice, in order; at most workers + 1 slices in flight."""
    slices = _slices(con, ncts)
    return map(flatten_slice, slices) if pool is None else in_order(pool, flatten_slice, slices, workers + 1)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One frame from the slices' frames, with the dtypes one frame of all their rows has: a slice where
    a column is empty or all None has it as `object`, which concatenation keeps (infer_objects mends)."""
    filled = [f for f in frames if len(f)] or frames[:1]
    if len(filled) == 1:
        return filled[0]
    return pd.concat(filled, ignore_index=True).infer_objects()


# pandas' notice that all-None columns will count for the dtype, which _concat mends. Filtered for the
# process, not with catch_warnings() around the call: that swaps the process's filters while GX runs in
# another thread (stage_registry), and is not thread-safe.
warnings.filterwarnings("ignore", message="The behavior of DataFrame concatenation with empty or all-NA entries",
                        category=FutureWarning)


@dataclass
class _Chunk:
    """A chunk's frames and each version's keys, read and flattened, awaiting its GX verdict."""
    lo: str | None
    hi: str | None
    by_key: dict[int, dict]
    frames: dict[str, pd.DataFrame]


def _collect(con, ncts: list[str], pool: Executor | None = None, workers: int = 1) -> _Chunk:
    # Chunks are runs of the sorted NCT ids (all candidates of a study together), so a range selects
    # exactly them; payloads come from raw by version key, and the join hands the keys' bounds to the raw
    # scan, so it skips the rest (an IN list read every payload per chunk).
    lo, hi = key_range(ncts)
    by_key: dict[int, dict] = {}
    parts: dict[str, list[pd.DataFrame]] = {}
    for frames_of_slice, keys in _flattened(con, ncts, pool, workers):
        by_key.update((b["version_key"], b) for b in keys)
        for name, frame in frames_of_slice.items():
            parts.setdefault(name, []).append(frame)
    if not parts:  # an empty batch: its suite still runs, on empty frames
        parts = {name: [frame] for name, frame in registry_frames([]).items()}
    return _Chunk(lo, hi, by_key, {name: _concat(fs) for name, fs in parts.items()})


def _validate(runner: GxRunner, chunk: _Chunk, gx: Executor | None) -> Future:
    """The chunk's suite run, in `gx` when given (its frames are dropped from the chunk once run)."""
    def run():
        frames, chunk.frames = chunk.frames, None
        refs = frozenset(frames["intervention"]["ref"])
        return runner.validate(SUITE, rules(refs), frames, key_columns=KEYS + ["field", "name"], docs=False)

    if gx is not None:
        return gx.submit(run)
    done: Future = Future()
    done.set_result(run())
    return done


def _write(con, run_id: str, verdict: Future, chunk: _Chunk, reasons: dict[str, list[str]]):
    """Quarantine the chunk's failing versions and stage the rest: (result, versions, held)."""
    result = verdict.result()
    lo, hi, by_key = chunk.lo, chunk.hi, chunk.by_key
    n_rows = len(by_key)
    quarantine: list[dict] = []
    held: set[int] = set()
    now = now_utc()
    for rr in result.results:
        if rr.success:
            continue
        for row in rr.unexpected:
            field = _field(rr.rule, row)
            text = _reason(rr.rule, row, field)
            reasons.setdefault(rr.rule.id, []).append(text)
            if rr.rule.level != "record":
                continue
            b = by_key[row["version_key"]]
            held.add(b["version_key"])
            quarantine.append({"run_id": run_id, "quarantined_at": now, "source_file": b["source_file"],
                               "record_key": b["nct_id"], "source_record": b["source_record"], "suite": SUITE,
                               "rule": rr.rule.id, "field": field, "reason": text, "version_key": b["version_key"]})
    if quarantine:  # held versions are few: their payloads are read back only for them
        payloads = dict(con.execute("SELECT version_key, payload FROM raw.ctgov_study_version "
                                    "WHERE version_key IN (SELECT unnest(?::BIGINT[]))", [sorted(held)]).fetchall())
        for q in quarantine:
            q["payload"] = payloads[q.pop("version_key")]
    write_quarantine(con, quarantine)
    mark_state(con, [(by_key[k]["nct_id"], by_key[k]["content_hash"]) for k in held], "quarantined", run_id)
    if len(held) < n_rows:
        con.execute(
            "INSERT INTO stage.ctgov_study SELECT version_key, nct_id, content_hash, version_seq, last_update_post_date,"
            " source_file, source_record FROM stage.ctgov_candidate WHERE nct_id BETWEEN ? AND ?"
            " AND version_key NOT IN (SELECT unnest(?::BIGINT[])) ORDER BY nct_id",
            [lo, hi, sorted(held)],
        )
    return result, n_rows, len(held)


def _read_sql(name: str) -> str:
    return (Path(__file__).resolve().parent / "sql" / name).read_text(encoding="utf-8")
