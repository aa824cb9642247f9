"""The registry benchmark must not rot: it runs end to end at a small size and prints its table.

Nothing here asserts a timing (figures move with machine load); the checks are that every stage ran,
every study was published, and the generator is deterministic and shaped like the registry."""
import zipfile

import orjson

from benchmarks import registry
from benchmarks.registry_corpus import write_bulk_zip


def test_generator_is_deterministic_and_registry_shaped(tmp_path):
    a = write_bulk_zip(tmp_path / "a" / "ctg-studies.json.zip", 300, seed=7)
    b = write_bulk_zip(tmp_path / "b" / "ctg-studies.json.zip", 300, seed=7)
    assert (tmp_path / "a" / "ctg-studies.json.zip").read_bytes() == (tmp_path / "b" / "ctg-studies.json.zip").read_bytes()
    assert a == b
    assert 10_000 < a["mean_bytes"] < 30_000  # the registry's mean is ~17 KB
    assert 0 < a["with_results"] < 300 * 0.3
    with zipfile.ZipFile(tmp_path / "a" / "ctg-studies.json.zip") as zf:
        names = zf.namelist()
        ids = {orjson.loads(zf.read(n))["protocolSection"]["identificationModule"]["nctId"] for n in names}
    assert len(names) == len(ids) == 300 and all(n == f"{i}.json" for n, i in zip(names, sorted(ids)))


def test_benchmark_runs_at_small_n_and_prints_its_table(tmp_path, capsys):
    assert registry.main(["--studies", "200", "--small", "40", "--workdir", str(tmp_path), "--repeat", "2",
                          "--day-changes", "5"]) == 0
    out = capsys.readouterr().out
    assert "repeats: 2 runs of each size" in out
    for line in ("startup: one-study run", "stage__fhir_resource", "publish__warehouse", "end to end (run wall time)",
                 "DuckDB read_json_objects (floor)", "peak RSS", "warehouse size at N", "published studies 200",
                 "next day", "pipeline time / DuckDB parse time", "peak RSS at N",
                 "note: per-study figures come from N - M = 160 studies; below 5,000"):
        assert line in out, line
    # The full load's publish made a standby, so both updates patch it, reading checksums only.
    updates = [row for row in out.splitlines() if row.startswith("incremental (1 changed study")]
    assert len(updates) == 2 and "first update after the full load" in updates[0], updates
    assert all("snapshot patched" in row and "compared checksums" in row for row in updates), updates
    # the day's update: its studies spread over the corpus, the first of them changed on both days before
    assert "a day's update (5 changed studies spread over the N)" in out and "published 5," in out, out
    fhir = next(row for row in out.splitlines() if row.startswith("stage__fhir_resource "))
    assert fhir.endswith("MiB") or fhir.endswith("GiB"), fhir  # the tree's peak while the step ran


def test_generated_free_texts_are_not_copies_of_the_templates(tmp_path):
    """Copied paragraphs would let zstd (the warehouse's storage) and the zip squeeze the corpus far
    below what the registry's distinct texts allow, flattering every I/O figure."""
    from benchmarks.registry_corpus import load_templates
    write_bulk_zip(tmp_path / "ctg-studies.json.zip", 300, seed=7)

    def summary(rec):
        return rec["protocolSection"].get("descriptionModule", {}).get("briefSummary", "")

    with zipfile.ZipFile(tmp_path / "ctg-studies.json.zip") as zf:
        summaries = [s for s in (summary(orjson.loads(zf.read(n))) for n in zf.namelist()) if len(s.split(" ")) >= 12]
    originals = {tuple(sorted(summary(t.record).split(" "))) for t in load_templates()[0]}
    assert len(summaries) > 200
    assert len(set(summaries)) == len(summaries)  # from 32 templates, yet no two alike
    assert all(tuple(sorted(s.split(" "))) in originals for s in summaries)  # same words, new order


def test_repeated_runs_are_summarised_by_their_medians_and_highest_peaks():
    runs = [registry.RunFigures(100, wall, peak, {"raw": raw, "fhir": fhir}, {"fhir": peak}, {"run": i}, 10)
            for i, (wall, peak, raw, fhir) in enumerate([(30.0, 5, 1.0, 9.0), (10.0, 7, 3.0, 4.0), (20.0, 6, 2.0, 5.0)])]
    got = registry.median_run(runs)
    assert (got.wall_s, got.peak_rss, got.steps, got.step_peaks) == (20.0, 7, {"raw": 2.0, "fhir": 5.0}, {"fhir": 7})
    assert got.summary == {"run": 2}  # the median run's own summary (published counts, snapshot)
    assert registry.median_run(runs[:1]) is runs[0]


def test_the_floor_is_timed_after_duckdb_has_read_json_once(tmp_path, monkeypatch):
    """The first read_json_objects of a process costs ~0.2 s once; untimed, it fell on the first
    measurement (M's) and made DuckDB's per-study cost look several times smaller at 10,000 studies."""
    corpus = tmp_path / "ctg-studies.json.zip"
    write_bulk_zip(corpus, 30, seed=3)
    reads: list[str] = []
    connect = registry.duckdb.connect

    class Logged:
        def __init__(self):
            self._con = connect()

        def execute(self, sql, params=None):
            if "read_json_objects" in sql:
                reads.append(params[0])
            return self._con.execute(sql, params)

        def close(self):
            self._con.close()

    monkeypatch.setattr(registry.duckdb, "connect", Logged)
    unzip, parse = registry.duckdb_parse_seconds(corpus, tmp_path / "unzipped", 30)
    assert parse >= 0 and unzip >= 0
    assert len(reads) == 2 and reads[0].endswith(".json") and "*" not in reads[0], reads  # one file, untimed
    assert reads[1] == str(tmp_path / "unzipped" / "*.json")  # then the timed read of them all
