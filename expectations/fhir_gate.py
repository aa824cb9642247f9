"""Map the registry batch to FHIR R5, validate every resource, stage what passes.

A study whose record cannot be mapped, or any of whose resources fails validation, is quarantined
whole (never published half-made) with the failing field named, and leaves the batch: the OMOP
mapping that follows sees only studies that made it through here.
"""
from __future__ import annotations

import gc
import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import pandas as pd

from expectations.quarantine import mark_state, write_quarantine, write_rule_results
from expectations.runtime import (GxRunner, SuiteResult, chunked, fold_result, in_order, key_range, merge_results,
                                  now_utc, release_memory)
from expectations.suites import fhir_staging
from transforms.fhir import MappingError, map_study
from transforms.ctgov.records import parse_payload
from transforms.fhir.store import append_new_studies, create_fhir_schema, fold_shared, resource_frame, resource_row
from transforms.fhir.validate import literal_references, serialized_reference_targets, validate_resources
from transforms.omop._db import transaction
from trialhouse.settings import stage_chunk, stage_workers
from trialhouse.workfile import single_threaded

STAGE = "stage_fhir"


@dataclass
class FhirStageResult:
    studies: int
    resources: int
    quarantined: int
    by_type: dict[str, int] = field(default_factory=dict)
    suite: SuiteResult | None = None


def _instant(date) -> str | None:
    return f"{date.isoformat()}T00:00:00Z" if date else None


@dataclass
class MappedChunk:
    """What mapping and validating one chunk of studies yields, picklable across processes."""

    held: dict[str, dict]  # nct_id -> quarantine row (without run id and time)
    mapped: list[dict]  # nct_id, source_file, source_record, content_hash of the studies that mapped
    frames: dict  # the fhir_staging suite's frames
    ids: set[str]  # every 'Type/id' the chunk holds
    # DataFrames, one per mapped slice in order: one row per emitted resource, with the study that
    # emitted it. Kept apart and written one after another, each numbered (the first written of a shared
    # resource is kept, as in one frame): concatenating copied the chunk's JSON (~200 MB at 5,000).
    rows: list


def map_chunk(rows: list[tuple]) -> MappedChunk:
    """Map and validate a chunk of staged studies: pure, so it runs in a worker process.

    Studies stream through: each one's resources are flattened into the suite's frames and
    serialized into table rows as soon as they validate, then dropped (holding a chunk's resource
    dicts took ~1 GB per worker at 5,000 studies)."""
    held: dict[str, dict] = {}
    mapped: list[dict] = []
    emitted: list[tuple] = []

    def passing() -> Iterator[dict]:
        for nct_id, chash, seq, lupd, payload, src, rec in rows:
            base = {"source_file": src, "record_key": nct_id, "source_record": rec, "suite": fhir_staging.SUITE,
                    "content_hash": chash}
            try:
                resources = map_study(parse_payload(payload), version_id=str(seq), last_updated=_instant(lupd))
                problems = [p for ps in validate_resources(resources).values() for p in ps]
            except MappingError as exc:
                held[nct_id] = {**base, "rule": "mappable", "field": exc.field,
                                "reason": f"{src} record {nct_id}: {exc.field}: cannot be mapped to FHIR R5: {exc}"}
                continue
            except Exception as exc:  # noqa: BLE001 - a record the registry suite let through but the mapping
                # did not foresee: held with what went wrong, never a crash of the batch
                held[nct_id] = {**base, "rule": "mappable", "field": "$",
                                "reason": f"{src} record {nct_id}: cannot be mapped to FHIR R5: "
                                          f"{type(exc).__name__}: {exc}"}
                continue
            if problems:
                held[nct_id] = {**base, "rule": "valid_resource", "field": problems[0].split(":", 1)[0],
                                "reason": f"{src} record {nct_id}: {len(problems)} FHIR validation problem(s): "
                                          + "; ".join(problems[:3])}
                continue
            study = {"nct_id": nct_id, "source_file": src, "source_record": rec, "content_hash": chash}
            mapped.append(study)
            rows_of_study = [resource_row(nct_id, r) for r in resources]
            emitted.extend(rows_of_study)
            yield {**study, "resources": resources, "references": _references(resources, rows_of_study)}

    frames, ids = fhir_staging.frames(passing())
    return MappedChunk(held, mapped, frames, ids, [resource_frame(emitted)])


def _references(resources: list[dict], rows: list[tuple]) -> list[tuple[str, str | None, str]]:
    """('Type/id', element path, target) of a study's literal references, for the suite's reference frame.

    Targets are read from the serialized rows (validation no longer walks every resource). The element
    path names a reference only in the gate's message for one that does not resolve, so it is spelled
    out (by a walk) only for a resource with a target outside the study's own resources, the only ones
    that can fail; the others carry None."""
    own = {f"{r['resourceType']}/{r['id']}" for r in resources}
    out: list[tuple[str, str | None, str]] = []
    for res, row in zip(resources, rows):
        name = f"{res['resourceType']}/{res['id']}"
        targets = None if "contained" in res else serialized_reference_targets(row[5])
        if targets is not None and all(t in own for t in targets):
            out += [(name, None, t) for t in targets]
        else:
            out += [(name, path, t) for path, t in literal_references(res)]
    return out


# Payloads as UTF-8 bytes (`encode`), not text: DuckDB makes bytes faster than a str, pickle sends them to a
# worker as they are, and orjson parses them without first encoding a str (5,000 studies, CPU per study:
# fetch 17.5-18.1 -> 15.3-15.4 us, pickle and unpickle 23.4-24.5 -> 13.1-15.4, parse 41.7-42.2 -> 21.3-35.1).
# Chunks are runs of sorted NCT ids: a range reads just their payloads (see registry_gate), and the
# order (which decides the first writer of a shared Organization or Location) is the same however chunked.
_SELECT = ("SELECT s.nct_id, s.content_hash, s.version_seq, s.last_update_post_date, encode(v.payload), s.source_file, "
           "s.source_record FROM stage.ctgov_study s JOIN raw.ctgov_study_version v USING (version_key) "
           "WHERE s.nct_id BETWEEN ? AND ? ORDER BY s.nct_id")


# Studies a worker maps at a time: a worker holds its slice's payloads, resources and results
# (peak ~800 MB per worker with 5,000, ~400 MB with 1,000 before the schema was shared; with 500 the
# two workers peak at 0.47 GB together against 0.58 GB with 1,000); the parent still validates a whole chunk
# at once, since great-expectations costs ~1.5 s per validation whatever the rows.
MAP_SLICE = 500
# Studies whose payloads one query reads, cut into MAP_SLICE tasks (a multiple of it): a query per
# 500 studies cost 35-44 us a study in the run process, one per 1,000 or more 22-24 (20,000 studies,
# one DuckDB thread, as the stage runs).
FETCH_SLICE = 4 * MAP_SLICE


def _merged(parts: list[MappedChunk]) -> MappedChunk:
    if len(parts) == 1:
        return parts[0]
    frames = {name: pd.concat([p.frames[name] for p in parts], ignore_index=True) for name in parts[0].frames}
    return MappedChunk({k: v for p in parts for k, v in p.held.items()}, [m for p in parts for m in p.mapped],
                       frames, set().union(*(p.ids for p in parts)), [r for p in parts for r in p.rows])


def worker_start() -> None:
    """A mapping worker's start: compile the validator, then move everything alive into the garbage
    collector's permanent generation and collect the youngest less often.

    The R5 schema and the rule tables are hundreds of thousands of objects that live as long as the
    worker, and each full collection walked them all again; a mapping worker allocates millions of
    short-lived dicts, none in cycles that matter. One core, 2,000 studies: 0.443 -> 0.407 ms a study,
    the same as with the collector off (0.406); the stage alone on 20,000 studies, alternating three
    times: workers' CPU 11.0-11.8 -> 10.4-10.9 s, wall 8.70-9.22 -> 8.50-8.71 s."""
    from transforms.fhir import rule_schema

    rule_schema.validator()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def _mapped_slices(con, ncts: list[str], size: int, workers: int) -> Iterator[tuple[MappedChunk, bool]]:
    """Mapped slices in order, each with whether it ends its chunk of `size` studies; they map in
    `workers` processes when there are several, a slice of at most MAP_SLICE studies per task.

    At most workers + 1 slices are in flight, so memory stays flat; the parent meanwhile runs GX and
    writes, which is why two cores give more than one."""
    parts = chunked(ncts, size)

    def fetch(part):
        return con.execute(_SELECT, key_range(part)).fetchall()

    ends: deque[bool] = deque()  # whether each slice handed to the pool ends its chunk, in order

    def payload_slices() -> Iterator[list[tuple]]:
        for part in parts:
            blocks = chunked(part, FETCH_SLICE)
            for b, block in enumerate(blocks):
                rows = fetch(block)
                if len(rows) != len(block):  # one row per study: stage.ctgov_study is keyed by NCT id
                    missing = sorted(set(block) - {r[0] for r in rows})
                    raise RuntimeError(f"staged studies without their raw version: {missing[:10]}")
                while rows:
                    ends.append(b == len(blocks) - 1 and len(rows) <= MAP_SLICE)
                    yield rows[:MAP_SLICE]
                    del rows[:MAP_SLICE]

    if workers <= 1 or (len(parts) == 1 and len(parts[0]) <= MAP_SLICE):
        for part in parts:
            yield map_chunk(fetch(part)), True
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding DuckDB's threads
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=worker_start) as pool:
        # a slice's flag is appended when it is submitted, so before its result comes back
        for result in in_order(pool, map_chunk, payload_slices(), workers + 1):
            yield result, ends.popleft()


def stage_fhir(con, runner: GxRunner, run_id: str, chunk: int | None = None,
               workers: int | None = None) -> FhirStageResult:
    """Map, validate and stage the batch, a chunk at a time.

    A chunk's rows are written only once its GX run has decided which of its studies to hold, and
    they are written a slice at a time while the next chunk's slices arrive: written all at once
    after the GX run, the workers sat idle once their few slices in flight were mapped (the
    20,000-study stage used 1.76 of the 2 cores, 1.85 since).

    The whole stage is one transaction. Committed a slice at a time, each slice's rows also went
    through the WAL and its partly filled last row group was rewritten at the next checkpoint: that
    checkpoint cost 0.34-0.38 s after 20,000 studies, 0.01 s now. A stage that fails leaves nothing
    half-staged either (the next run rebuilds it)."""
    with transaction(con):
        return _stage(con, runner, run_id, chunk, workers)


def _stage(con, runner: GxRunner, run_id: str, chunk: int | None, workers: int | None) -> FhirStageResult:
    con.execute("DROP SCHEMA IF EXISTS stage_fhir CASCADE")
    create_fhir_schema(con, STAGE)
    ncts = [r[0] for r in con.execute("SELECT nct_id FROM stage.ctgov_study ORDER BY nct_id").fetchall()]
    reasons: dict[str, list[str]] = {"mappable": [], "valid_resource": []}
    merged, held_all, studies, writes = None, [], 0, 0
    unwritten: deque = deque()  # the last validated chunk's rows, one frame a mapped slice
    pending_keys: set[str] = set()  # shared resources already set aside: later copies are not written

    def write_next() -> None:
        nonlocal writes
        rows = unwritten.popleft()
        writes += 1  # numbers the slices: the first written of a shared resource is kept
        append_new_studies(con, STAGE, rows, writes, pending_keys=pending_keys)

    done: list[MappedChunk] = []
    workers = workers or stage_workers()
    with single_threaded(con, workers):
        for part, last in _mapped_slices(con, ncts, chunk or stage_chunk(), workers):
            done.append(part)
            if unwritten:
                write_next()
            if not last:
                continue
            mc, done = _merged(done), []
            result = runner.validate(fhir_staging.SUITE, fhir_staging.rules(mc.ids, len(mc.mapped)), mc.frames,
                                     key_columns=fhir_staging.KEYS + ["field"], docs=False)
            merged = fold_result(merged, result)
            held = _hold_failures(mc, result, reasons)
            if held:  # held studies are few: their payloads are read back only for them
                payloads = dict(con.execute("SELECT s.nct_id, v.payload FROM stage.ctgov_study s JOIN raw.ctgov_study_version v"
                                            " USING (version_key) WHERE s.nct_id IN (SELECT unnest(?::VARCHAR[]))",
                                            [sorted(held)]).fetchall())
                now = now_utc()
                write_quarantine(con, [{**h, "run_id": run_id, "quarantined_at": now, "payload": payloads[n]}
                                       for n, h in held.items()])
            mark_state(con, [(h["record_key"], h["content_hash"]) for h in held.values()], "quarantined", run_id)
            held_all += held
            studies += sum(1 for m in mc.mapped if m["nct_id"] not in held)
            while unwritten:  # the previous chunk's, when this one had fewer slices
                write_next()
            unwritten.extend(rows[~rows["emitted_by"].isin(held)] if held else rows for rows in mc.rows)
            del mc, result
            release_memory()
    while unwritten:
        write_next()
    fold_shared(con, STAGE)
    result = merge_results(fhir_staging.SUITE, [merged] if merged is not None else [], runner.build_docs())
    write_rule_results(con, run_id, result, reasons, extra=[
        ("mappable", "record", "record", len(ncts)),
        ("valid_resource", "record", "resource", len(ncts)),
    ])
    if held_all:
        con.execute("DELETE FROM stage.ctgov_study WHERE nct_id IN (SELECT unnest(?::VARCHAR[]))", [sorted(held_all)])
    by_type = dict(con.execute("SELECT resource_type, count(*) FROM stage_fhir.resource GROUP BY ALL ORDER BY 1").fetchall())
    return FhirStageResult(studies, sum(by_type.values()), len(held_all), by_type, result)


def _hold_failures(mc: MappedChunk, result: SuiteResult, reasons: dict[str, list[str]]) -> dict[str, dict]:
    """The chunk's studies to quarantine: unmappable, invalid, or failing a record rule of the suite."""
    held = dict(mc.held)
    by_nct = {m["nct_id"]: m for m in mc.mapped}
    for rr in result.failures():
        for row in rr.unexpected:
            text = (f"{row['source_file']} record {row['nct_id']}: {row['resource']} {row.get('field', '')} "
                    f"= {row.get(rr.rule.column)!r} {rr.rule.message}")
            reasons.setdefault(rr.rule.id, []).append(text)
            m = by_nct.get(row["nct_id"])
            if rr.rule.level == "record" and m and row["nct_id"] not in held:
                held[row["nct_id"]] = {"source_file": m["source_file"], "record_key": m["nct_id"],
                                       "source_record": m["source_record"], "suite": fhir_staging.SUITE,
                                       "rule": rr.rule.id, "field": row.get("field"), "reason": text,
                                       "content_hash": m["content_hash"]}
    for h in mc.held.values():
        reasons[h["rule"]].append(h["reason"])
    return held
