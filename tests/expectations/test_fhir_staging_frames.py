"""The fhir_staging suite's reference frame: every literal reference, named by its element path."""
import json
import re
from pathlib import Path

from expectations.suites.fhir_staging import frames
from transforms.fhir import map_study

DATA = Path(__file__).resolve().parents[1] / "data" / "ctgov"


def _references(record: dict) -> list[tuple[str, str, str]]:
    study = {"nct_id": "x", "source_file": "f", "source_record": "r", "resources": map_study(record)}
    ref = frames([study])[0]["reference"]
    return list(zip(ref["resource"], ref["field"], ref["target"]))


def test_every_literal_reference_is_found_with_its_path():
    """The walk keeps a stack of keys and spells a path out only where it finds a reference; the
    paths must be the element paths, indexes included, and nothing outside `contained`."""
    refs = _references(json.loads((DATA / "NCT06668571.json").read_text(encoding="utf-8")))
    by_field = {(res.split("/")[0], field): target for res, field, target in refs}
    assert by_field[("ResearchStudy", "ResearchStudy.site[0].reference")].startswith("Location/")
    assert by_field[("PractitionerRole", "PractitionerRole.practitioner.reference")].startswith("Practitioner/")
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+(\.[a-zA-Z]+(\[\d+\])*)+\.reference", f) for _, f, _ in refs)
    assert all(not t.startswith("#") for *_, t in refs)
    # every reference of every real single-study file, counted against a plain recursive walk
    for path in sorted(DATA.glob("NCT*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        expected = sum(_count(r) for r in map_study(record))
        assert len(_references(record)) == expected, path.name


def _count(node) -> int:
    if isinstance(node, dict):
        ref = node.get("reference")
        own = int(isinstance(ref, str) and not ref.startswith("#"))
        return own + sum(_count(v) for k, v in node.items() if k != "contained")
    if isinstance(node, list):
        return sum(_count(v) for v in node)
    return 0


def test_mapping_workers_spell_a_path_only_where_a_reference_can_fail():
    """map_chunk reads reference targets from the serialized rows; the element path (used only in the
    gate's message for a reference that does not resolve) is spelled out for a resource whose targets
    are not all the study's own resources, and only there."""
    from expectations.fhir_gate import _references
    from transforms.fhir.store import resource_row
    from transforms.fhir.validate import literal_references

    resources = map_study(json.loads((DATA / "NCT06668571.json").read_text(encoding="utf-8")))
    refs = _references(resources, [resource_row("NCT06668571", r) for r in resources])
    expected = [(f"{r['resourceType']}/{r['id']}", t) for r in resources for _p, t in literal_references(r)]
    assert [(name, t) for name, _f, t in refs] == expected and len(refs) > 10
    assert {f for _n, f, _t in refs} == {None}
    study = resources[0]
    study["site"][0] = {"reference": "Location/not-emitted"}
    refs = _references(resources, [resource_row("NCT06668571", r) for r in resources])
    spelled = [(f, t) for name, f, t in refs if f is not None]
    assert ("ResearchStudy.site[0].reference", "Location/not-emitted") in spelled
    assert all(f.startswith("ResearchStudy.") for f, _t in spelled)  # the study's other resources: no walk
