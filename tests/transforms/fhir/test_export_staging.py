"""A whole FHIR export written aside and moved in (transforms/fhir/export_staging.py): the previous export
stands whole until then, whatever stops it, and a sweep it did not finish is finished by the next export."""

from __future__ import annotations

import os

import pytest

from tests.transforms.fhir.test_export_parts import con, files  # noqa: F401 (con: a fixture)
from transforms.fhir import export
from transforms.fhir.export import export_ndjson, export_parts, export_pending, read_manifest
from transforms.fhir.export_staging import STAGING


def test_a_whole_export_leaves_the_previous_one_standing_until_its_parts_are_written(con, tmp_path, monkeypatch):
    """It deleted every part first: a repair (a manifest damaged, or a run killed between the stamps and
    the manifest) left readers a nearly empty export for its whole length, and one killed part way left
    it so. Now the parts are written aside and moved in at the end; a killed one leaves the old export."""
    target = tmp_path / "fhir"
    export_ndjson(con, "fhir", tmp_path, transaction_time="t0")
    before = {**files(tmp_path), "fhir/manifest.json": (target / "manifest.json").read_bytes()}
    (target / "ResearchStudy" / "NCT0000.ndjson").write_text("{}\n")  # another layout's leftover, unlisted
    os.unlink(target / "manifest.json")  # damaged: the next export is written whole
    (target / "manifest.json").write_bytes(before["fhir/manifest.json"].replace(b'"t0"', b'"hand"'))
    assert read_manifest(target) is None
    seen, write_batch = [], export._write_batch

    def watched(con, sql_schema, where, rtype, parts):
        seen.append({k: v for k, v in files(tmp_path).items() if k != "fhir/ResearchStudy/NCT0000.ndjson"})
        if len(seen) == 3:
            raise KeyboardInterrupt  # killed part way
        return write_batch(con, sql_schema, where, rtype, parts)

    monkeypatch.setattr(export, "_write_batch", watched)
    with pytest.raises(KeyboardInterrupt):
        export_parts(con, "fhir", tmp_path, set(), transaction_time="t1")
    old_parts = {k: v for k, v in before.items() if k != "fhir/manifest.json"}
    assert seen == [old_parts] * 3  # every part of the previous export in place while the new one was written
    assert {k: v for k, v in files(tmp_path).items() if k != "fhir/ResearchStudy/NCT0000.ndjson"} == old_parts

    monkeypatch.setattr(export, "_write_batch", write_batch)
    manifest = export_parts(con, "fhir", tmp_path, set(), transaction_time="t0")
    assert files(tmp_path) == old_parts  # the leftover gone, once the new manifest no longer listed it
    assert (target / "manifest.json").read_bytes() == before["fhir/manifest.json"]
    assert read_manifest(target) == manifest
    assert not (target / STAGING).exists()


@pytest.mark.parametrize("next_export", ["export_parts", "a publish with nothing pending"])
def test_a_whole_export_killed_before_its_sweep_is_swept_by_the_next_export_whole_or_not(con, tmp_path, monkeypatch,
                                                                                       next_export):
    """The manifest is written before the unlisted files are deleted: killed in between, the manifest was
    valid, every later export was part by part, and none deleted them (a review)."""
    from schemas import apply_sql

    apply_sql(con, "meta/meta.sql")
    target = tmp_path / "fhir"
    export_ndjson(con, "fhir", tmp_path, transaction_time="t0")
    clean = files(tmp_path)
    (target / "ResearchStudy.ndjson").write_text("{}\n")  # an earlier layout's
    (target / "ResearchStudy" / "NCT0000.ndjson").write_text("{}\n")  # a part no longer listed
    os.unlink(target / "manifest.json")
    write_manifest = export._write_manifest

    def killed(*a, **k):
        write_manifest(*a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_write_manifest", killed)
    with pytest.raises(KeyboardInterrupt):
        export_parts(con, "fhir", tmp_path, set(), transaction_time="t0")
    monkeypatch.undo()
    assert read_manifest(target) is not None and (target / STAGING).exists()
    assert (target / "ResearchStudy" / "NCT0000.ndjson").exists()

    if next_export == "export_parts":
        export_parts(con, "fhir", tmp_path, set(), transaction_time="t1")  # part by part, on the valid manifest
    else:
        assert export_pending(con, tmp_path)[:2] == (0, 0)
    assert files(tmp_path) == clean and not (target / "ResearchStudy.ndjson").exists()
    assert not (target / STAGING).exists()


@pytest.mark.parametrize("leftover", ["a file", "a link to a folder", "a dangling link"])
def test_a_whole_export_replaces_whatever_stands_at_its_staging_path(con, tmp_path, leftover):
    """rmtree refuses a file or a link: every whole export then failed on mkdir, run after run (a review)."""
    target = tmp_path / "out" / "fhir"
    target.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not the export's")
    staging = target / STAGING
    if leftover == "a file":
        staging.write_text("x")
    else:
        staging.symlink_to(elsewhere if leftover == "a link to a folder" else tmp_path / "nothing")
    export_ndjson(con, "fhir", tmp_path / "ref", transaction_time="t")
    manifest = export_ndjson(con, "fhir", tmp_path / "out", transaction_time="t")
    assert files(tmp_path / "out") == files(tmp_path / "ref") and read_manifest(target) == manifest
    assert not os.path.lexists(staging) and (elsewhere / "keep.txt").read_text() == "not the export's"


def test_a_whole_export_moves_its_parts_across_file_systems(con, tmp_path, monkeypatch):
    """A type's folder linked to another file system: a rename from the staging folder fails (EXDEV)."""
    import errno

    export_ndjson(con, "fhir", tmp_path / "ref", transaction_time="t")
    replace = os.replace

    def across(src, dst):
        if f"/{STAGING}/" in str(src) and f"/{STAGING}/" not in str(dst) and "/ResearchStudy/" in str(src):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        replace(src, dst)

    monkeypatch.setattr(export.os, "replace", across)
    export_ndjson(con, "fhir", tmp_path / "out", transaction_time="t")
    assert files(tmp_path / "out") == files(tmp_path / "ref")
    assert not list((tmp_path / "out" / "fhir").glob("*/.*.tmp")) and not (tmp_path / "out" / "fhir" / STAGING).exists()
