"""GxRunner: large value sets are checked through a membership column, with the same verdicts."""
import subprocess
import sys
from pathlib import Path

import pandas as pd

from expectations.runtime import LARGE_VALUE_SET, GxRunner, Rule, chunked, merge_results


def _rules(values):
    return [
        Rule("in_big_set", "t", "ref", "ref", lambda g, v=values: g.expectations.ExpectColumnValuesToBeInSet(
            column="ref", value_set=v), message="is unknown"),
        Rule("columns", "t", "*", "t.*", lambda g: g.expectations.ExpectTableColumnsToMatchSet(
            column_set=["key", "ref"], exact_match=True), level="batch"),
    ]


def test_large_value_set_rule_finds_the_same_rows_and_table_rules_do_not_see_helper_columns():
    values = [f"id{i}" for i in range(LARGE_VALUE_SET * 4)]
    df = pd.DataFrame({"key": ["a", "b", "c", "d"], "ref": ["id1", "nope", None, "id7"]})
    result = GxRunner().validate("s", _rules(values), {"t": df}, key_columns=["key"], docs=False)
    by_id = {r.rule.id: r for r in result.results}
    assert by_id["columns"].success
    big = by_id["in_big_set"]
    assert not big.success and [(u["key"], u["ref"]) for u in big.unexpected] == [("b", "nope")]
    small = GxRunner().validate("s", _rules(values[:10]), {"t": df}, key_columns=["key"], docs=False)
    assert [u["key"] for u in small.results[0].unexpected] == ["b"]  # the plain GX path agrees


def test_merge_results_fails_a_rule_that_failed_in_any_chunk():
    df1 = pd.DataFrame({"key": ["a"], "ref": ["id1"]})
    df2 = pd.DataFrame({"key": ["b"], "ref": ["bad"]})
    runner = GxRunner()
    parts = [runner.validate("s", _rules(["id1"]), {"t": d}, ["key"], docs=False) for d in (df1, df2)]
    merged = merge_results("s", parts, None)
    rule = next(r for r in merged.results if r.rule.id == "in_big_set")
    assert not rule.success and rule.evaluated == 2 and rule.unexpected[0]["key"] == "b"
    assert chunked([], 3) == [[]] and chunked([1, 2, 3, 4], 3) == [[1, 2, 3], [4]]


def test_data_docs_under_a_relative_export_folder(tmp_path, monkeypatch):
    """`trialhouse demo` uses ./data/exports: GX needs the Data Docs folder absolute."""
    from pathlib import Path
    monkeypatch.chdir(tmp_path)
    runner = GxRunner(Path("data/exports/data_docs/run"))
    result = runner.validate("s", _rules(["id1"]), {"t": pd.DataFrame({"key": ["a"], "ref": ["id1"]})}, ["key"])
    assert result.success and Path(result.docs_path) == tmp_path / "data/exports/data_docs/run/index.html"


def test_a_run_keeps_no_validated_frame_alive():
    """A run validates chunk after chunk in one GX context; GX cached every batch's DataFrame for the
    context's life, so memory grew with the whole batch instead of one chunk."""
    import gc

    runner = GxRunner()
    for i in range(3):  # both paths: plain rules and the membership helper frame
        df = pd.DataFrame({"key": [f"k{i}", "x"], "ref": ["id1", "nope"], "chunk_marker_column": [i, i]})
        runner.validate("s", _rules([f"id{j}" for j in range(LARGE_VALUE_SET + 1)]) + _rules(["id1"]), {"t": df},
                        key_columns=["key"], docs=False)
        del df
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, pd.DataFrame) and "chunk_marker_column" in o.columns]
    assert alive == []


def test_a_run_keeps_no_metric_of_a_validated_frame():
    """GX's execution engine also caches every metric it computed (a rule's row mask, the frame's index
    as an array) by batch id, never read again: ~2 MB a 5,000-study FHIR chunk, kept for the run."""
    import gc

    rows = 1237  # a length nothing else here has
    runner = GxRunner()
    for i in range(3):
        df = pd.DataFrame({"key": [f"k{j}" for j in range(rows)], "ref": ["id1"] * (rows - 1) + ["nope"]})
        runner.validate("s", _rules(["id1"]), {"t": df}, key_columns=["key"], docs=False)
        del df
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, (pd.Series, pd.Index)) and len(o) == rows]
    assert alive == []


def test_each_suite_renders_only_its_own_data_docs_pages(tmp_path):
    """GX re-rendered every page of the run for each suite; earlier suites' pages now stay as written."""
    from pathlib import Path
    runner = GxRunner(tmp_path)
    frame = {"t": pd.DataFrame({"key": ["a"], "ref": ["id1"]})}
    runner.validate("first", _rules(["id1"]), frame, ["key"])
    pages = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.html") if p.name != "index.html"}
    assert any("first" in p.parts for p in pages)
    result = runner.validate("second", _rules(["id1"]), frame, ["key"])
    assert all(p.stat().st_mtime_ns == t for p, t in pages.items())  # not rendered again
    index = Path(result.docs_path).read_text()
    assert "first" in index and "second" in index  # the index still lists every suite of the run
    assert any("second" in p.parts for p in tmp_path.rglob("*.html"))


RELEASE = """
import sys
from expectations.runtime import release_memory
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) * 1024
# ~400 MB of malloc'd (not pymalloc) objects; what survives the chunk is interleaved, as in a run,
# so the freed pages are holes glibc cannot give back by trimming its heap's top
chunk = [(bytes(20_000 + i % 7), bytes(600)) for i in range(20_000)]
kept = [small for _, small in chunk]
del chunk
before = rss()
release_memory()
print(before - rss())
"""


def test_release_memory_hands_a_freed_chunk_back_to_the_os():
    import pytest

    from expectations import runtime

    if runtime._TRIM is None or not sys.platform.startswith("linux"):
        pytest.skip("malloc_trim is glibc's")
    out = subprocess.run([sys.executable, "-c", RELEASE], capture_output=True, text=True, check=True).stdout
    assert int(out) > 200 * 2**20  # glibc kept the freed pages until told


def _pair_rule(ignore_row_if):
    return [Rule("pair_in_set", "t", "code", "coding", lambda g: g.expectations.ExpectColumnPairValuesToBeInSet(
        column_A="element", column_B="code", value_pairs_set=[("status", "active"), ("phase", "phase-1")],
        ignore_row_if=ignore_row_if), message="not in the element's value set")]


def test_pair_membership_gives_gx_own_verdicts_without_its_row_by_row_metric():
    """GX computes pair membership with DataFrame.iterrows (7.8 s per 10,000 studies in the FHIR
    suite); the runner computes it by a hash lookup and GX asserts the flag. Same rows, and the
    missing-value rules of `ignore_row_if` are GX's."""
    df = pd.DataFrame({"key": ["a", "b", "c", "d", "e"], "element": ["status", "phase", "status", None, None],
                       "code": ["active", "active", None, "active", None]})
    expected = {"both_values_are_missing": ["b", "c", "d"], "either_value_is_missing": ["b"],
                "neither": ["b", "c", "d", "e"]}
    for ignore, keys in expected.items():
        result = GxRunner().validate("s", _pair_rule(ignore), {"t": df}, key_columns=["key"], docs=False)
        rule = result.results[0]
        assert not rule.success and [u["key"] for u in rule.unexpected] == keys, ignore
        assert {"element", "code"} <= set(rule.unexpected[0])  # the offending values ride along
    good = GxRunner().validate("s", _pair_rule("both_values_are_missing"), {"t": df.iloc[[0]]}, ["key"], docs=False)
    assert good.success


def test_equal_rules_both_get_their_verdict():
    """GX drops an equal expectation added to a suite one by one; suites are built whole here, so two
    rules with equal expectations (e.g. DQD's fkDomain and isStandardValidConcept on one column) both
    run, in one validation, and both answer."""
    values = [f"id{i}" for i in range(LARGE_VALUE_SET * 4)]
    df = pd.DataFrame({"key": ["a", "b"], "ref": ["id1", "nope"]})
    twice = _rules(values)[:1] + [Rule("in_big_set_again", "t", "ref", "ref", lambda g: g.expectations.ExpectColumnValuesToBeInSet(
        column="ref", value_set=list(values)), message="is unknown")]
    result = GxRunner().validate("s", twice, {"t": df}, key_columns=["key"], docs=False)
    assert [(r.rule.id, [u["key"] for u in r.unexpected]) for r in result.results] == [
        ("in_big_set", ["b"]), ("in_big_set_again", ["b"])]


def test_batches_are_not_fingerprinted_cell_by_cell(monkeypatch):
    """GX hashed every cell of each validated frame only for a batch marker (6 s of the FHIR suite
    at 100,000 studies); the verdicts do not depend on it."""
    from great_expectations.execution_engine import pandas_execution_engine

    calls = []
    monkeypatch.setattr(pandas_execution_engine, "hash_pandas_dataframe", lambda df: calls.append(df) or "x")
    df = pd.DataFrame({"key": ["a", "b"], "ref": ["id1", "nope"]})
    result = GxRunner().validate("s", _rules(["id1"]), {"t": df}, key_columns=["key"], docs=False)
    assert calls == [] and [u["key"] for u in result.results[0].unexpected] == ["b"]


def test_two_large_sets_on_one_column_each_give_their_own_verdict():
    """Two rules on one column with different large sets (DQD's fkDomain and isStandardValidConcept)
    must each be checked against their own set, not share the first one's membership column."""
    values = [f"id{i}" for i in range(LARGE_VALUE_SET * 2)]
    df = pd.DataFrame({"key": ["a", "b", "c"], "ref": ["id1", "id2", "other"]})
    rules = [
        Rule("all_ids", "t", "ref", "ref", lambda g: g.expectations.ExpectColumnValuesToBeInSet(
            column="ref", value_set=values), message="x"),
        Rule("odd_ids", "t", "ref", "ref", lambda g: g.expectations.ExpectColumnValuesToBeInSet(
            column="ref", value_set=[v for v in values if int(v[2:]) % 2] + [f"odd{i}" for i in range(LARGE_VALUE_SET)]),
            message="x"),
    ]
    result = GxRunner().validate("s", rules, {"t": df}, key_columns=["key"], docs=False)
    got = {r.rule.id: [u["key"] for u in r.unexpected] for r in result.results}
    assert got == {"all_ids": ["c"], "odd_ids": ["b", "c"]}


_DEFERRED_PROBE = """
import sys
from expectations.runtime import DEFERRED_IMPORTS, gx
gx()
loaded = [m for m in ("scipy.stats._stats_py", "altair.vegalite") if m in sys.modules]
assert not loaded, f"imported with great_expectations: {loaded}"
from scipy import stats
from scipy.stats import norm
import altair
import importlib.util
assert abs(stats.entropy([0.5, 0.5], [0.25, 0.75]) - 0.1438410362) < 1e-9
assert norm.cdf(0) == 0.5 and altair.Chart.__name__ == "Chart"
assert importlib.util.find_spec("scipy.stats") is not None
assert all(type(sys.modules[m]).__name__ == "module" for m in DEFERRED_IMPORTS)
print("ok")
"""


def test_great_expectations_loads_without_scipy_stats_and_altair_until_they_are_used():
    # A fresh process: this one may already hold them. Without the deferral GX imports both (~1 s).
    out = subprocess.run([sys.executable, "-c", _DEFERRED_PROBE], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_only_failing_rules_are_rerun_for_their_unexpected_rows(monkeypatch, tmp_path):
    """Pass one gives every rule its verdict with GX's BASIC results; only the failing ones run again
    with COMPLETE results for the keys of every unexpected row (mostly < 1 included)."""
    from great_expectations.core.validation_definition import ValidationDefinition

    runs = []
    real = ValidationDefinition.run

    def spy(self, *args, **kwargs):
        runs.append((self.suite.name, len(self.suite.expectations), str(kwargs.get("result_format"))))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ValidationDefinition, "run", spy)
    df = pd.DataFrame({"key": [f"k{i}" for i in range(30)], "v": [None if i % 10 == 3 else i for i in range(30)]})
    rules = [
        Rule("not_null", "t", "v", "v", lambda g: g.expectations.ExpectColumnValuesToNotBeNull(column="v")),
        Rule("mostly_not_null", "t", "v", "v",
             lambda g: g.expectations.ExpectColumnValuesToNotBeNull(column="v", mostly=0.95)),
        Rule("lenient", "t", "v", "v", lambda g: g.expectations.ExpectColumnValuesToNotBeNull(column="v", mostly=0.5)),
        Rule("in_range", "t", "v", "v", lambda g: g.expectations.ExpectColumnValuesToBeBetween(
            column="v", min_value=0, max_value=100)),
    ]
    result = GxRunner(tmp_path / "docs").validate("s", rules, {"t": df}, key_columns=["key"])
    by_id = {r.rule.id: r for r in result.results}
    assert [r.rule.id for r in result.results if not r.success] == ["not_null", "mostly_not_null"]
    for rid in ("not_null", "mostly_not_null"):
        assert [u["key"] for u in by_id[rid].unexpected] == ["k3", "k13", "k23"]
    assert by_id["lenient"].unexpected == [] and by_id["in_range"].unexpected == []
    assert [(n, k) for n, k, _ in runs] == [("s.t", 4), ("s.t.failures", 2)]
    assert "BASIC" in runs[0][2] and "COMPLETE" in runs[1][2]
    assert result.docs_path and (tmp_path / "docs" / "index.html").exists()


def test_in_order_keeps_order_and_reads_ahead_at_most_depth():
    """The registry and FHIR stages feed workers through `in_order`: a slice's payloads are read from
    DuckDB only when its task is submitted, so at most `depth` slices are held at once."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from expectations.runtime import in_order

    read = []

    def args():
        for i in range(12):
            read.append(i)
            yield i

    def slow_square(i):
        time.sleep(0.01 * (i % 3))  # later tasks may finish first
        return i * i

    out = []
    with ThreadPoolExecutor(3) as pool:
        for r in in_order(pool, slow_square, args(), depth=3):
            assert len(read) <= len(out) + 1 + 3
            out.append(r)
    assert out == [i * i for i in range(12)] and read == list(range(12))


def test_a_frame_without_key_columns_names_its_unexpected_rows_by_position_with_their_value():
    """OMOP's cdm_source has no key column: GX then lists only row positions, and the reasons built
    from unexpected rows (dicts) crashed the stage instead of failing the gate."""
    rule = Rule("release_date", "cdm_source", "source_release_date", "cdm_source.source_release_date",
                lambda g: g.expectations.ExpectColumnValuesToBeInSet(column="source_release_date",
                                                                    value_set=["2026-01-01"]),
                level="batch", message="is implausible")
    df = pd.DataFrame({"cdm_source_name": ["a", "b"], "source_release_date": ["2026-01-01", "2099-01-01"]})
    result = GxRunner().validate("s", [rule], {"cdm_source": df}, key_columns=["metadata_id"], docs=False)
    assert result.results[0].unexpected == [{"row": 1, "source_release_date": "2099-01-01"}]
