"""Staging in chunks, with FHIR mapped in worker processes, publishes exactly what one batch does.

Chunking keeps memory flat at registry scale; it must not change a single published row, a hold or
a rule's verdict. A run that finds nothing new leaves the analysts' file and the export alone."""
import json
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from expectations import fhir_gate, registry_gate
from tests.conftest import land_every_real_record, study_files
from transforms.fhir import export
from transforms.fhir.export import PART_SQL, export_ndjson, is_shared
from orchestration.quality import publish as publish_asset
from trialhouse.runner import run_pipeline
from trialhouse.settings import ENV_STAGE_CHUNK, ENV_WORKERS, Settings
from trialhouse.snapshot import owed_path

QUERIES = {
    "resources": "SELECT resource_type, id, md5(CAST(resource AS VARCHAR)) FROM fhir.resource ORDER BY ALL",
    "states": "SELECT nct_id, content_hash, status FROM meta.study_state ORDER BY ALL",
    "holds": "SELECT record_key, suite, rule, field, payload IS NOT NULL FROM quarantine.record ORDER BY ALL",
    "verdicts": "SELECT suite, rule, evaluated, failed FROM quarantine.rule_result ORDER BY ALL",
    # OMOP ids are numbered by the first study that has the key, so chunks number every row, shared
    # sites and investigators too, as one batch does (by key alone, each chunk numbered its own keys).
    **{f"omop.{t}": f"SELECT * FROM omop.{t} ORDER BY ALL"
       for t in ("location", "care_site", "provider", "cohort_definition", "metadata", "source_to_concept_map")},
    "omop.cdm_source": "SELECT * EXCLUDE (cdm_release_date) FROM omop.cdm_source",
    "id_map": "SELECT table_name, natural_key, id, owner FROM meta.omop_id_map ORDER BY ALL",
}


def _run(tmp, monkeypatch, chunk: str | None, workers: str | None, map_slice: int | None = None):
    landing = tmp / "landing" / "ctgov"
    land_every_real_record(landing)
    bad = json.loads(study_files()[0].read_text())  # one record each chunking must hold the same way
    bad["protocolSection"]["identificationModule"]["nctId"] = "NCT99000042"
    bad["protocolSection"]["statusModule"]["overallStatus"] = "ON_HOLD_FOREVER"
    (landing / "bad.json").write_text(json.dumps(bad))
    unmappable = json.loads(study_files()[1].read_text())  # passes the registry suite, not the FHIR mapping
    unmappable["protocolSection"]["identificationModule"]["nctId"] = "NCT99000043"
    unmappable["protocolSection"]["eligibilityModule"]["minimumAge"] = "eighteen"
    (landing / "unmappable.json").write_text(json.dumps(unmappable))
    for env, value in ((ENV_STAGE_CHUNK, chunk), (ENV_WORKERS, workers)):
        if value is None:
            monkeypatch.delenv(env, raising=False)
        else:
            monkeypatch.setenv(env, value)
    if map_slice:  # workers flatten and map slices of a chunk; the parent validates the chunk whole
        monkeypatch.setattr(fhir_gate, "MAP_SLICE", map_slice)
        monkeypatch.setattr(registry_gate, "FLATTEN_SLICE", map_slice)
    settings = Settings(str(tmp / "wh.duckdb"), str(tmp / "landing"), str(tmp / "exports"), None)
    report = run_pipeline(settings)
    assert report.success, report.failures
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        return settings, report, {k: con.execute(q).fetchall() for k, q in QUERIES.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        whole = _run(tmp_path_factory.mktemp("whole"), mp, None, "1")
        chunked = _run(tmp_path_factory.mktemp("chunked"), mp, "4", "2", map_slice=3)
    finally:
        mp.undo()
    return whole, chunked


def test_chunks_and_workers_publish_the_same_rows_holds_and_verdicts(runs):
    (_, _, whole), (_, _, chunked) = runs
    assert whole["resources"]
    assert ("NCT99000042", "ctgov_registry") in {h[:2] for h in whole["holds"]}
    assert ("NCT99000043", "fhir_staging", "mappable", True) in {h[:3] + h[4:] for h in whole["holds"]}
    for key in QUERIES:
        if key == "verdicts":  # rule ids and failures match; evaluated counts are per row, summed over chunks
            assert [(s, r, f) for s, r, _, f in whole[key]] == [(s, r, f) for s, r, _, f in chunked[key]]
        else:
            assert whole[key] == chunked[key], key


def test_a_run_with_nothing_new_keeps_the_published_file_and_export(runs):
    settings, _, _ = runs[1]
    published = Path(settings.warehouse)
    manifest = Path(settings.export) / "fhir" / "manifest.json"
    before = (published.stat().st_ino, published.stat().st_mtime_ns, manifest.stat().st_mtime_ns)
    report = run_pipeline(settings)
    assert report.success, report.failures
    assert report.metadata["publish/warehouse"]["snapshot_replaced"] is False
    assert (published.stat().st_ino, published.stat().st_mtime_ns, manifest.stat().st_mtime_ns) == before


def _land_amendment(settings, index: int, note: str, date: str) -> dict:
    """A newer version of a real record, its title amended, landed for the next run; returns the record."""
    record = json.loads(study_files()[index].read_text())
    record["protocolSection"]["identificationModule"]["briefTitle"] += f" ({note})"
    record["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": date, "type": "ACTUAL"}
    (Path(settings.landing) / "ctgov" / f"amended-{date}.json").write_text(json.dumps(record))
    return record


def _crash(*args, **kwargs):
    raise OSError("disk full")


def test_one_changed_study_rewrites_only_its_export_parts(runs, tmp_path):
    settings, _, _ = runs[0]
    export = Path(settings.export) / "fhir"
    stamps = {p: p.stat().st_mtime_ns for p in export.glob("*/*.ndjson")}
    ident = _land_amendment(settings, 0, "amended", "2026-11-28")["protocolSection"]["identificationModule"]

    report = run_pipeline(settings)

    assert report.success, report.failures
    rewritten = {(p.parent.name, p.stem) for p in export.glob("*/*.ndjson") if stamps.get(p) != p.stat().st_mtime_ns}
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        own = set(con.execute(f"SELECT DISTINCT resource_type, {PART_SQL} FROM fhir.resource WHERE nct_id = ?",
                              [ident["nctId"]]).fetchall())
        whole = export_ndjson(con, "fhir", tmp_path, transaction_time="t")
    assert own <= rewritten and all(is_shared(part) for _, part in rewritten - own)
    shared = {(p.parent.name, p.stem) for p in export.glob("*/shared-*.ndjson")}
    assert len(rewritten & shared) < len(shared) / 2  # the study's sites' buckets, not every shared resource
    assert report.metadata["publish/warehouse"]["fhir_parts_rewritten"] == len(rewritten) < len(stamps) / 2
    assert report.metadata["publish/warehouse"]["fhir_parts_spliced"] == len(own)  # the study's own parts
    # and the export is what a whole export of the published resources writes
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["output"] == whole["output"]
    assert all((export / o["url"]).read_bytes() == (tmp_path / "fhir" / o["url"]).read_bytes() for o in whole["output"])


def test_a_publish_that_dies_before_its_export_is_finished_by_the_next_run(runs, monkeypatch, tmp_path):
    settings, _, _ = runs[1]
    published = Path(settings.warehouse)
    record = _land_amendment(settings, 2, "amended again", "2026-11-29")
    before = (published.stat().st_ino, published.stat().st_mtime_ns)

    monkeypatch.setattr(export, "_write_batch", _crash)
    assert not run_pipeline(settings).success  # the merge committed; export and snapshot did not happen
    assert (published.stat().st_ino, published.stat().st_mtime_ns) == before
    monkeypatch.undo()

    report = run_pipeline(settings)  # nothing new to stage, but the unfinished publish is completed first

    assert report.success, report.failures
    assert report.metadata["raw/ctgov_study_version"]["finished_earlier_publish"] is True
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        title = con.execute("SELECT title FROM fhir.research_study WHERE nct_id = ?",
                            [record["protocolSection"]["identificationModule"]["nctId"]]).fetchone()[0]
        assert title.endswith("(amended again)")
        assert con.execute("SELECT count(*) FROM meta.fhir_export_pending").fetchone()[0] == 0  # done before the swap
        whole = export.export_ndjson(con, "fhir", tmp_path, transaction_time="t")
    fhir = Path(settings.export) / "fhir"
    assert json.loads((fhir / "manifest.json").read_text())["output"] == whole["output"]
    assert all((fhir / o["url"]).read_bytes() == (tmp_path / "fhir" / o["url"]).read_bytes() for o in whole["output"])
    assert run_pipeline(settings).metadata["publish/warehouse"]["snapshot_replaced"] is False  # and then rests


def test_a_swap_owed_is_done_even_when_the_next_runs_gate_blocks(tmp_path, monkeypatch):
    """The owed swap waited for the next publish, and a gate that blocks run after run (schema drift)
    kept the export ahead of the analysts' file until a correction landed (found by killing a run
    between its export and its swap): the next run does it first, before any gate."""
    settings = Settings(str(tmp_path / "wh.duckdb"), str(tmp_path / "landing"), str(tmp_path / "exports"), None)
    (tmp_path / "landing" / "ctgov").mkdir(parents=True)
    for p in study_files()[:3]:
        (tmp_path / "landing" / "ctgov" / p.name).write_bytes(p.read_bytes())
    assert run_pipeline(settings).success
    published = Path(settings.warehouse)
    nct = _land_amendment(settings, 1, "amended before a kill", "2026-11-30")["protocolSection"]["identificationModule"]["nctId"]
    monkeypatch.setattr(publish_asset, "publish_snapshot", _crash)
    assert not run_pipeline(settings).success
    monkeypatch.undo()
    assert owed_path(published).exists()
    drift = json.loads(study_files()[2].read_text())
    drift["protocolSection"]["identificationModule"]["nctId"] = "NCT99000077"
    drift["protocolSection"]["brandNewModule"] = {"x": 1}  # a module the API v2 metadata does not define
    (tmp_path / "landing" / "ctgov" / "drift.json").write_text(json.dumps(drift))

    report = run_pipeline(settings)

    assert report.checks["stage/ctgov_study:ctgov_registry_gate"]["passed"] is False
    assert "publish/warehouse" not in report.metadata  # blocked
    assert report.metadata["raw/ctgov_study_version"]["finished_earlier_publish"] is True
    assert not owed_path(published).exists()
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        title = con.execute("SELECT title FROM fhir.research_study WHERE nct_id = ?", [nct]).fetchone()[0]
        assert title.endswith("(amended before a kill)")
        whole = export.export_ndjson(con, "fhir", tmp_path / "whole", transaction_time="t")
    fhir = Path(settings.export) / "fhir"
    assert json.loads((fhir / "manifest.json").read_text())["output"] == whole["output"]
    assert all((fhir / o["url"]).read_bytes() == (tmp_path / "whole" / "fhir" / o["url"]).read_bytes()
               for o in whole["output"])


def test_a_publish_that_dies_in_its_export_leaves_the_marker_and_the_next_run_finishes_it(runs, monkeypatch):
    """The marker was set after the export: a run killed while writing it left new parts beside the old
    manifest and analysts' file, and nothing said so (a crash-consistency review)."""
    settings, _, _ = runs[1]
    published = Path(settings.warehouse)
    nct = _land_amendment(settings, 4, "amended before an export crash", "2026-12-01")[
        "protocolSection"]["identificationModule"]["nctId"]
    real = publish_asset.export_pending

    def dies_midway(con, root, **kw):
        real(con, root, **kw)  # the parts and the manifest are written, the run dies before the swap
        raise RuntimeError("killed while exporting")

    monkeypatch.setattr(publish_asset, "export_pending", dies_midway)
    assert not run_pipeline(settings).success
    monkeypatch.undo()
    assert owed_path(published).exists()
    with duckdb.connect(settings.warehouse, read_only=True) as con:  # the analysts' file: still the old title
        assert not con.execute("SELECT title FROM fhir.research_study WHERE nct_id = ?", [nct]).fetchone()[0].endswith(
            "(amended before an export crash)")

    with _finished_by_the_next_run(settings, nct, "(amended before an export crash)") as con:
        whole = export.export_ndjson(con, "fhir", Path(settings.export).parent / "whole", transaction_time="t")
    fhir = Path(settings.export) / "fhir"
    assert json.loads((fhir / "manifest.json").read_text())["output"] == whole["output"]


@contextmanager
def _finished_by_the_next_run(settings, nct: str, amended: str):
    """The next run finishes the dead run's publish first thing: the analysts' file, opened, has the amendment."""
    report = run_pipeline(settings)
    assert report.success, report.failures
    assert report.metadata["raw/ctgov_study_version"]["finished_earlier_publish"] is True
    assert not owed_path(settings.warehouse).exists()
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        title = con.execute("SELECT title FROM fhir.research_study WHERE nct_id = ?", [nct]).fetchone()[0]
        assert title.endswith(amended)
        yield con


def test_a_publish_that_dies_before_its_swap_is_swapped_by_the_next_run(runs, monkeypatch):
    """The export bookkeeping is cleared before the swap (the analysts' file must not list parts as
    pending), so only the marker beside the file says a swap is still owed."""
    settings, _, _ = runs[1]
    published = Path(settings.warehouse)
    nct = _land_amendment(settings, 3, "amended before a crash", "2026-11-30")["protocolSection"]["identificationModule"]["nctId"]
    before = (published.stat().st_ino, published.stat().st_mtime_ns)

    monkeypatch.setattr(publish_asset, "publish_snapshot", _crash)
    assert not run_pipeline(settings).success  # merged, exported, bookkeeping cleared; no swap
    monkeypatch.undo()
    assert (published.stat().st_ino, published.stat().st_mtime_ns) == before
    assert owed_path(published).exists()

    # nothing new to stage or export, but the swap is owed: done first
    with _finished_by_the_next_run(settings, nct, "(amended before a crash)") as con:
        assert con.execute("SELECT count(*) FROM meta.fhir_export_pending").fetchone()[0] == 0
    assert run_pipeline(settings).metadata["publish/warehouse"]["snapshot_replaced"] is False
