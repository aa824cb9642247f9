"""great-expectations 1.x, imported lazily and once per process, on pandas DataFrames.

`import great_expectations` costs seconds (2 to 25 s here, with the machine's load), so nothing
imports it at module level: the first suite of a run pays for it and every later suite (and test)
reuses the module. GX's SQL data source over duckdb-engine fails on this stack
(MetricResolutionError), so frames are read from DuckDB into pandas and validated there.
"""
from __future__ import annotations

import datetime as dt
import importlib
import itertools
import importlib.util
import logging
import os
import sys
import types
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from expectations.data_docs import own_static

_gx = None

# Modules GX imports at its import time only for expectations this project never runs:
# `scipy.stats` (KL divergence, KS tests: functions only) and `altair` (those expectations' charts).
# They were ~40% of `import great_expectations` in a run (1.0-1.3 s of every validating run,
# a one-study update included). They load for real the first time anything reads them.
DEFERRED_IMPORTS = ("scipy.stats", "altair")


class _DeferredModule(types.ModuleType):
    """Stands in sys.modules for a module until an attribute is read, then becomes it.

    importlib.util.LazyLoader's module loads on any attribute read, the import system's own read
    of `__spec__` included, so GX's `from scipy import stats` loaded it (measured). This one holds
    the real spec for that probe and loads on the first other read (`__path__`, `__file__`, a name)."""

    def __init__(self, name: str, spec) -> None:
        super().__init__(name)
        self.__spec__ = spec  # the import system reads it on every import of the name
        for probe in ("__loader__", "__package__"):  # reading these loads it
            del self.__dict__[probe]

    def __getattr__(self, name: str):
        name_ = self.__dict__["__name__"]
        if sys.modules.get(name_) is self:
            del sys.modules[name_]
        real = importlib.import_module(name_)  # the real module now sits in sys.modules
        self.__dict__.update(real.__dict__)
        return getattr(real, name)


def _defer(names=DEFERRED_IMPORTS) -> None:
    for name in names:
        spec = None if name in sys.modules else importlib.util.find_spec(name)  # found without loading it
        if spec is not None:
            sys.modules[name] = _DeferredModule(name, spec)


def gx():
    global _gx
    if _gx is None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        _defer()
        import great_expectations
        from great_expectations.execution_engine import pandas_execution_engine

        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        # GX fingerprints every in-memory batch under 1 GB (pd.util.hash_pandas_object over every
        # cell) only to label it in the batch markers: 6 s of the FHIR suite at 100,000 studies.
        # The rules never read it; batches here are told apart by their asset and validation names.
        pandas_execution_engine.HASH_THRESHOLD = 0
        _gx = great_expectations
    return _gx


@dataclass(frozen=True)
class Rule:
    """One expectation with what the gate needs to act on its failures.

    `level` is 'record' (offending records are quarantined, the rest proceed) or 'batch' (any
    failure blocks the publish). `field` is the JSON path or table.column the reason names.
    """

    id: str
    frame: str
    column: str  # the frame column the expectation looks at
    field: str
    build: Callable[[object], object]  # gx module -> Expectation
    level: str = "record"
    message: str = ""


@dataclass
class RuleResult:
    rule: Rule
    success: bool
    evaluated: int
    unexpected: list[dict] = field(default_factory=list)  # rows: key columns + offending value


@dataclass
class SuiteResult:
    suite: str
    results: list[RuleResult]
    docs_path: str | None = None

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    def failures(self, level: str | None = None) -> list[RuleResult]:
        return [r for r in self.results if not r.success and (level is None or r.rule.level == level)]


class GxRunner:
    """One ephemeral GX context per run; Data Docs go to `docs_dir` when given."""

    def __init__(self, docs_dir: Path | None = None):
        g = gx()
        self.context = g.get_context(mode="ephemeral")
        try:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        except Exception:  # progress bars are cosmetic
            pass
        self.docs_dir = docs_dir = docs_dir.resolve() if docs_dir is not None else None  # GX wants it absolute
        if docs_dir is not None:
            docs_dir.mkdir(parents=True, exist_ok=True)
            self.context.add_data_docs_site(
                site_name="trialhouse",
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        self.source = self.context.data_sources.add_pandas("trialhouse")
        self._n = 0
        self._rendered: set = set()  # Data Docs pages already written by this run

    def validate(self, suite_name: str, rules: list[Rule], frames: dict[str, pd.DataFrame],
                 key_columns: list[str], docs: bool = True) -> SuiteResult:
        """Run every rule on its frame; unexpected rows come back with their key columns.

        `docs=False` skips rendering Data Docs: a suite run chunk by chunk renders once, at its end
        (rendering covers every validation of the run so far, so per chunk it would grow quadratically).
        """
        g = gx()
        results: list[RuleResult] = []
        for frame_name in dict.fromkeys(r.frame for r in rules):
            frame_rules = [r for r in rules if r.frame == frame_name]
            df = frames[frame_name]
            if df.empty:
                results += [RuleResult(r, True, 0) for r in frame_rules]
                continue
            # One suite per frame, equal expectations included: GX drops an equal expectation only
            # when it is added one by one (add_expectation), and suites here are built whole.
            layer = [(r, r.build(g)) for r in frame_rules]
            results += self._validate_layer(g, f"{suite_name}.{frame_name}", layer, df, key_columns)
        return SuiteResult(suite_name, results, self.build_docs() if docs else None)

    def _validate_layer(self, g, name, layer, df, key_columns) -> list[RuleResult]:
        plain, membership, derived_df, derived_keys = _membership_columns(g, layer, df, key_columns)
        by_rule: dict[str, RuleResult] = {}
        if plain:
            by_rule.update(self._run(g, name, plain, df, key_columns))
        if membership:  # its own validation, so table-level rules never see the helper columns
            by_rule.update(self._run(g, f"{name}.membership", membership, derived_df, derived_keys))
        return [by_rule[r.id] for r, _ in layer]

    def _run(self, g, name, layer, df, key_columns) -> dict[str, RuleResult]:
        """Every rule on every row with GX's BASIC results (counts, a sample), then only the rules that
        failed again with COMPLETE ones, for their unexpected rows' keys.

        COMPLETE results for every rule cost ~10 ms a rule per validation against ~7 ms for BASIC, and
        ~30% more on a 20,000-row chunk (measured); a passing rule's unexpected rows are never used
        (its verdict counts no failures, see write_rule_results). The verdicts are pass one's."""
        frame = df.reset_index(drop=True)
        for r, exp in layer:
            exp.meta = {**(exp.meta or {}), "rule": r.id}
        first = self._validation(g, name, [e for _, e in layer], frame, "BASIC")
        failed = [e for _, e in layer if not first[e.meta["rule"]].success]
        unexpected: dict[str, list] = {}
        if failed:
            keys = [k for k in key_columns if k in frame.columns]
            again = self._validation(g, f"{name}.failures", [e.copy(update={"id": None}, deep=True) for e in failed],
                                     frame, {"result_format": "COMPLETE", "unexpected_index_column_names": keys})
            by_id = {r.id: r for r, _ in layer}
            unexpected = {rule: _unexpected_rows(res.result.get("unexpected_index_list") or [], frame, keys,
                                                 by_id[rule].column) for rule, res in again.items()}
        return {r.id: RuleResult(r, bool(first[r.id].success), len(frame), unexpected.get(r.id, []))
                for r, _ in layer}

    def _validation(self, g, name, expectations, frame, result_format) -> dict:
        """One GX validation of `frame`; results by rule id."""
        self._n += 1
        asset = self.source.add_dataframe_asset(f"{name}.{self._n}")
        batch_def = asset.add_batch_definition_whole_dataframe("batch")
        # Given whole, not added one by one: once a chunk has stored a suite of this name, GX
        # re-serialized the whole stored suite on every add_expectation (1.6 s per 10,000 studies).
        suite = self.context.suites.add_or_update(g.ExpectationSuite(name=name, expectations=expectations))
        vd = self.context.validation_definitions.add_or_update(
            g.ValidationDefinition(name=f"{name}.{self._n}", data=batch_def, suite=suite)
        )
        vr = vd.run(batch_parameters={"dataframe": frame}, result_format=result_format)
        # GX's execution engine caches every batch it loaded, DataFrame included, for the context's
        # life: one run's chunks piled up (memory grew with the batch, ~1 GB per 100,000 studies).
        engine = self.source.get_execution_engine()
        engine.batch_manager.reset_batch_cache()
        engine.batch_manager.batch_data_cache.clear()
        # Its metric cache too: every metric of every batch (the rules' row masks, the frame's index as
        # an array), keyed by batch id, so never read again. ~2 MB a 5,000-study FHIR chunk: 57 MB over
        # 30 chunks of the 600,000-study run (tracemalloc), the run process's growth left after fold_result.
        metrics = getattr(engine, "_metric_cache", None)
        if isinstance(metrics, dict):
            metrics.clear()
        return {res.expectation_config.meta["rule"]: res for res in vr.results}

    def build_docs(self) -> str | None:
        """Render the Data Docs pages of the suites and validations added since the last call, and the index.

        GX renders every page in its stores unless told which: each suite of a run re-rendered the
        suites before it (about a second per suite in a one-study run, growing with the run)."""
        if self.docs_dir is None:
            return None
        keys = [*self.context.expectations_store.list_keys(), *self.context.validation_results_store.list_keys()]
        new = [k for k in keys if k not in self._rendered]
        if new:  # an empty list would mean "everything" to GX
            own_static(self.docs_dir)  # its assets are rewritten in place: none may be a shared copy's name
            self.context.build_data_docs(site_names=["trialhouse"], resource_identifiers=new)
            self._rendered.update(new)
        index = self.docs_dir / "index.html"
        return str(index) if index.exists() else None


def merge_results(suite: str, parts: list[SuiteResult], docs_path: str | None, keep: int = 100) -> SuiteResult:
    """One result for a suite run chunk by chunk: a rule passes if it passed on every chunk.

    Callers act on each chunk's unexpected rows as they go; the merged result keeps the first
    `keep` of them per rule as examples."""
    merged: dict[str, RuleResult] = {}
    for part in parts:
        for r in part.results:
            m = merged.get(r.rule.id)
            if m is None:
                merged[r.rule.id] = RuleResult(r.rule, r.success, r.evaluated, list(r.unexpected[:keep]))
            else:
                m.success = m.success and r.success
                m.evaluated += r.evaluated
                m.unexpected.extend(r.unexpected[: max(0, keep - len(m.unexpected))])
    return SuiteResult(suite, list(merged.values()), docs_path)


def fold_result(merged: SuiteResult | None, part: SuiteResult) -> SuiteResult:
    """Fold one chunk's result into the stage's so far. A stage keeps this, not every chunk's result:
    a chunk's rules hold what they were built from (the FHIR suite's every resource id of the chunk,
    the registry suite's intervention names), and keeping all 120 chunks' at 600,000 studies grew the
    run process by ~63,000 Python objects a chunk, ~0.7 GB by the end (measured)."""
    return merge_results(part.suite, [merged, part] if merged is not None else [part], None)


def in_order(pool, fn: Callable, args: Iterator, depth: int) -> Iterator:
    """fn(a) for each a of `args`, computed in `pool`, yielded in the order of `args`. At most `depth`
    tasks are in flight and `args` is read only as they are submitted, so a lazy iterator (a query per
    slice) holds memory for `depth` slices, not the batch's."""
    pending = deque(pool.submit(fn, a) for a in itertools.islice(args, depth))
    while pending:
        fut = pending.popleft()
        nxt = next(args, _END)
        if nxt is not _END:
            pending.append(pool.submit(fn, nxt))
        yield fut.result()


_END = object()


def _malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL(None).malloc_trim  # glibc; elsewhere there is nothing to call
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Give a finished chunk's freed heap back to the OS.

    Python frees a chunk's objects when the next replaces them, but glibc keeps the freed pages for
    reuse, so between chunks the run process kept ~150-200 MB it no longer used on top of the next
    chunk's working set. No gc.collect() here: the chunk's objects are already freed by reference
    counting, and a full collection of the run process's ~350,000 objects costs 0.2 s a chunk
    (same 50,000-study peak without it, 1.97 GB against 1.96 GB)."""
    if _TRIM is not None:
        _TRIM(0)


def chunked(items: list, size: int) -> list[list]:
    """`items` in runs of `size`; an empty batch is one empty chunk, so its suite still runs."""
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


def key_range(chunk: list[str]) -> list[str]:
    """BETWEEN bounds selecting a chunk of sorted keys; an empty chunk gets a range that selects nothing."""
    return [chunk[0], chunk[-1]] if chunk else ["1", "0"]


def _unexpected_rows(found: list, frame: pd.DataFrame, keys: list[str], column: str) -> list[dict]:
    """Unexpected rows as dicts: GX gives key columns and the offending value, but in a frame without
    key columns (OMOP's cdm_source) only the rows' positions, which broke every reason written from
    them: a cdm_source release date in the future crashed the OMOP stage with an AttributeError
    instead of failing its gate. Such a row is named by its position, with its value."""
    if keys:
        return list(found)
    cols = [column] if column in frame.columns else []
    return [{"row": int(i), **{c: frame.at[i, c] for c in cols}} for i in found]


# Above this many values, set membership is computed with a hash lookup and GX asserts the result.
LARGE_VALUE_SET = 256


def _membership_columns(g, layer, df: pd.DataFrame, key_columns: list[str]):
    """Rewrite `values in <large set>` expectations onto a precomputed membership column.

    GX 1.x copies an expectation's whole value_set (through pydantic) several times per validation,
    so a set that grows with the batch (every resource id, every intervention name) made the FHIR
    suite cost 14 s for 2,000 studies and grow faster than the batch. Every row is still checked:
    `<column>__in_set` is True/False by a hash lookup (NULL where the column is NULL, which GX's
    in-set ignores), and the expectation asserts it is True with the same `mostly`. The original
    column rides along in the unexpected rows, so reasons still show the offending value.
    Pair membership (`ExpectColumnPairValuesToBeInSet`) is rewritten the same way at any set size:
    GX computes it row by row (see `_pair_membership`).
    """
    plain, membership, derived, extra_keys = [], [], {}, []
    flags: dict[tuple, str] = {}  # (columns, set, missing-value rule) -> its helper column

    def flag_for(columns: list[str], wanted: frozenset, how, compute) -> str:
        # Rules on one column with different sets (DQD's fkDomain and isStandardValidConcept) each get
        # their own helper column; equal ones share it.
        key = (tuple(columns), wanted, how)
        if key not in flags:
            name = "__".join(columns) + "__in_set"
            n = sum(1 for k in flags if k[0] == key[0])
            flags[key] = name if n == 0 else f"{name}_{n + 1}"
            derived[flags[key]] = compute()
        return flags[key]

    for r, exp in layer:
        kind = type(exp).__name__
        values = getattr(exp, "value_set", None)
        if kind == "ExpectColumnValuesToBeInSet" and isinstance(values, (list, set, tuple)) and len(values) > LARGE_VALUE_SET:
            columns, col, wanted = [exp.column], df[exp.column], frozenset(values)
            flag = flag_for(columns, wanted, None,
                            lambda: col.isin(wanted).astype(object).where(col.notna(), None))
            size = len(values)
        elif kind == "ExpectColumnPairValuesToBeInSet" and isinstance(exp.value_pairs_set, (list, set, tuple)):
            columns, pairs = [exp.column_A, exp.column_B], frozenset((x, y) for x, y in exp.value_pairs_set)
            flag = flag_for(columns, pairs, exp.ignore_row_if,
                            lambda: _pair_membership(df[columns[0]], df[columns[1]], pairs, exp.ignore_row_if))
            size = len(exp.value_pairs_set)
        else:
            plain.append((r, exp))
            continue
        extra_keys += columns
        membership.append((r, g.expectations.ExpectColumnValuesToBeInSet(
            column=flag, value_set=[True], mostly=exp.mostly,
            meta={"membership_of": columns if len(columns) > 1 else columns[0], "value_set_size": size})))
    if not membership:
        return plain, [], df, key_columns
    return plain, membership, df.assign(**derived), list(dict.fromkeys(key_columns + extra_keys))


def _pair_membership(a: pd.Series, b: pd.Series, wanted: frozenset, ignore_row_if: str) -> pd.Series:
    """(a, b) in `wanted` per row, None where GX's pair expectation ignores the row.

    GX computes this metric with DataFrame.iterrows, ~50 us a row: the FHIR suite's bound codes
    (about ten rows a study) cost 7.8 s per 10,000 studies. A missing value counts as None, as in GX."""
    a_na, b_na = a.isna(), b.isna()
    a_v, b_v = a.astype(object).where(~a_na, None), b.astype(object).where(~b_na, None)
    flag = pd.Series([(x, y) in wanted for x, y in zip(a_v, b_v)], index=a.index, dtype=object)
    ignored = {"both_values_are_missing": a_na & b_na, "either_value_is_missing": a_na | b_na}.get(ignore_row_if)
    return flag.where(~ignored, None) if ignored is not None else flag


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


_runner: tuple[str, GxRunner] | None = None


def runner_for(run_id: str, docs_dir: Path | None) -> GxRunner:
    """One GX context per run, shared by every suite of that run (in-process executor)."""
    global _runner
    if _runner is None or _runner[0] != run_id:
        _runner = (run_id, GxRunner(docs_dir))
    return _runner[1]
