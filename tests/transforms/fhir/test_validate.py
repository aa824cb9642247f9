"""The validator rejects broken resources, with a message naming resource and element,
and the fast path rejects every resource fhir.resources rejects."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.transforms.fhir._corpus import ALL_RECORDS, LAST_UPDATED, by_type
from transforms.fhir.validate import _model_problems, validate_resource, validate_resources


def mutate(resource, change):
    broken = copy.deepcopy(resource)
    change(broken)
    return broken


def test_bad_phase_code_is_caught(seed_resources):
    rs = mutate(seed_resources[0], lambda r: r["phase"]["coding"][0].update(code="phase-5"))
    problems = validate_resource(rs)
    assert problems == [("ResearchStudy/nct06668571: phase.coding[0]: code 'phase-5' is not in code system "
                         "http://hl7.org/fhir/research-study-phase")]


def test_code_from_another_value_set_is_caught(seed_resources):
    rs = mutate(seed_resources[0], lambda r: r["phase"]["coding"][0].update(
        system="http://hl7.org/fhir/research-study-status", code="recruiting"))
    assert "is not from the bound value set" in validate_resource(rs)[0]


def test_bad_codes_in_other_bound_elements(seed_resources):
    rs = seed_resources[0]
    for change, element in [
        (lambda r: r["comparisonGroup"][1]["type"]["coding"][0].update(code="placebo"), "comparisonGroup[1].type"),
        (lambda r: r["associatedParty"][0]["role"]["coding"][0].update(code="boss"), "associatedParty[0].role"),
        (lambda r: r["progressStatus"][0]["state"]["coding"][0].update(code="open"), "progressStatus[0].state"),
        (lambda r: r["region"][0]["coding"][0].update(code="XX"), "region[0]"),
        (lambda r: r.update(status="published"), "status"),
    ]:
        problems = validate_resource(mutate(rs, change))
        assert len(problems) == 1 and element in problems[0], problems


def test_broken_structure_is_caught(seed_resources):
    rs = seed_resources[0]
    missing_name = validate_resource(mutate(rs, lambda r: r["comparisonGroup"][0].pop("name")))
    assert missing_name == ["ResearchStudy/nct06668571: comparisonGroup[0].name: required element missing"]
    wrong_shape = validate_resource(mutate(rs, lambda r: r.update(phase=[r["phase"]])))
    assert wrong_shape and "phase" in wrong_shape[0] and "schema" in wrong_shape[0]
    unknown = validate_resource(mutate(rs, lambda r: r.update(sponsor="Mayo")))
    assert unknown and "sponsor" in unknown[0]


# Broken resources: (resource type, change). Each must be rejected by the fast path; where
# fhir.resources rejects it too, that is asserted as well so the fast path never lets through
# what the model validation would stop.
BROKEN = [
    ("ResearchStudy", lambda r: r.pop("status")),
    ("ResearchStudy", lambda r: r.update(foo=1)),
    ("ResearchStudy", lambda r: r.update(title=5)),
    ("ResearchStudy", lambda r: r.update(title="")),
    ("ResearchStudy", lambda r: r.update(id="nct 1")),
    ("ResearchStudy", lambda r: r["period"].update(start="2025-13")),
    ("ResearchStudy", lambda r: r["meta"].update(lastUpdated="2025-10-14")),
    ("ResearchStudy", lambda r: r["associatedParty"][0].pop("role")),
    ("ResearchStudy", lambda r: r["comparisonGroup"][0].pop("name")),
    ("ResearchStudy", lambda r: r["comparisonGroup"][0].update(linkId="a b")),
    ("ResearchStudy", lambda r: r["progressStatus"][0].pop("state")),
    ("ResearchStudy", lambda r: r["recruitment"].update(targetNumber=-1)),
    ("ResearchStudy", lambda r: r["recruitment"].update(targetNumber=2.5)),
    ("ResearchStudy", lambda r: r["phase"]["coding"][0].update(extra="x")),
    ("ResearchStudy", lambda r: r["site"].__setitem__(0, {"reference": "Patient/p1"})),
    ("ResearchStudy", lambda r: r.update(keyword=[])),
    ("ResearchStudy", lambda r: r.update(whyStopped={})),
    ("ResearchStudy", lambda r: r.update(status="bogus")),
    ("Group", lambda r: r.pop("type")),
    ("Group", lambda r: r.update(type="robot")),
    ("Group", lambda r: r["characteristic"][0].pop("exclude")),
    ("Group", lambda r: r["characteristic"][0].pop("valueRange")),
    ("Group", lambda r: r["characteristic"][0].update(valueBoolean=True)),
    ("Location", lambda r: r.update(status="open")),
    ("Location", lambda r: r.update(position={"latitude": "north"})),
    ("PractitionerRole", lambda r: r.update(practitioner={"reference": "Organization/x"})),
    ("EvidenceVariable", lambda r: r.pop("status")),
    ("Organization", lambda r: r.update(name=["Mayo"])),
]


@pytest.mark.parametrize("case", range(len(BROKEN)))
def test_fast_path_rejects_what_fhir_resources_rejects(seed_resources, case):
    rtype, change = BROKEN[case]
    original = by_type(seed_resources, rtype)[0]
    if rtype == "ResearchStudy":
        original = seed_resources[0]
    assert validate_resource(original) == [] and _model_problems(original, "x") == []
    broken = mutate(original, change)
    fast = validate_resource(broken)
    assert fast, "fast path accepted a broken resource"
    assert all(p.startswith(f"{rtype}/") for p in fast)
    full = validate_resource(broken, mode="full")
    assert set(fast) <= set(full)


def test_fast_and_full_agree_on_all_valid_resources(top_level_resources):
    assert validate_resources(top_level_resources, mode="full") == {}


def test_batch_form_groups_problems_by_resource(seed_resources):
    broken = [mutate(seed_resources[0], lambda r: r.pop("status")), *seed_resources[1:]]
    assert list(validate_resources(broken)) == ["ResearchStudy/nct06668571"]


def test_not_a_resource():
    assert validate_resource({"resourceType": "Nonsense", "id": "x"})[0].startswith("Nonsense/x: unknown resourceType")
    assert validate_resource([]) != []


def test_hl7_ctgov_example_passes_and_contained_resources_are_checked():
    """HL7's own ctgov example (contained resources, terminology.hl7.org systems) is valid,
    so the validator is not stricter than R5; breaking a contained resource is caught."""
    path = Path(__file__).resolve().parents[2] / "data" / "fhir" / "R5-ResearchStudy-example-ctgov-study-record.json"
    example = json.loads(path.read_text(encoding="utf-8"))
    assert validate_resource(example, mode="full") == []
    broken = mutate(example, lambda r: r["contained"][0].pop("status"))
    assert validate_resource(broken) == [
        "ResearchStudy/example-ctgov-study-record: contained[0].status: required element missing"]


def test_one_compiled_schema_serves_every_emitted_type_with_the_same_verdicts(top_level_resources):
    """The emitted types share one validator (R5 compiled once, not once per type); it must say
    exactly what a validator compiled for the type alone says, errors and paths included."""
    import jsonschema_rs

    from transforms.fhir.validate import COMMON_TYPES, _schema, _schema_validator

    assert {r["resourceType"] for r in top_level_resources} <= set(COMMON_TYPES)
    assert len({id(_schema_validator(t)) for t in COMMON_TYPES}) == 1
    full = _schema()
    seen = set()
    for res in top_level_resources:
        rtype = res["resourceType"]
        if rtype in seen:
            continue
        seen.add(rtype)
        alone = jsonschema_rs.validator_for({"$schema": full["$schema"], "$ref": f"#/definitions/{rtype}",
                                             "definitions": full["definitions"]})
        broken = mutate(res, lambda r: r.update(status=123, unknownElement=True, id=["x"]))
        for doc in (res, broken):
            got = sorted((e.message, list(e.instance_path)) for e in _schema_validator(rtype).iter_errors(doc))
            want = sorted((e.message, list(e.instance_path)) for e in alone.iter_errors(doc))
            assert got == want and bool(got) == (doc is broken)
    assert len(seen) >= 5


def test_null_and_empty_primitives_are_named_by_the_structure_walker(seed_resources):
    """Plain primitive elements take a short path through the walker (no path kept unless something is
    wrong): null and empty values, alone or in arrays, must still be reported where they are."""
    from transforms.fhir.validate import _structure_problems

    rs = seed_resources[0]
    assert _structure_problems(rs, "x") == []
    assert _structure_problems(mutate(rs, lambda r: r.update(title=None)), "x") == ["x: title: null or empty value"]
    assert _structure_problems(mutate(rs, lambda r: r.update(title={})), "x") == ["x: title: null or empty value"]
    loc = by_type(seed_resources, "Location")[0]
    assert _structure_problems(mutate(loc, lambda r: r.update(alias=["a", None, "b", {}])), "x") == [
        "x: alias[1]: null or empty value", "x: alias[3]: null or empty value"]
    assert _structure_problems(mutate(loc, lambda r: r.update(alias=[])), "x") == ["x: alias: empty array"]
    assert _structure_problems(mutate(loc, lambda r: r.update(alias=["a", 0, False])), "x") == []


def test_the_validating_walk_collects_every_literal_reference():
    """validate_resources hands the gate the references it met on its walk; they must be exactly
    what a walk of every JSON node finds (the frame used to walk each resource a second time)."""
    from transforms.fhir import MappingError, map_study
    from transforms.fhir.validate import literal_references

    resources = []
    for _name, record in ALL_RECORDS:  # single files, older versions and API pages
        try:
            resources += map_study(record, last_updated=LAST_UPDATED)
        except MappingError:
            continue
    found: list = []
    assert validate_resources(resources, references=found) == {}
    expected = [(f"{r['resourceType']}/{r['id']}", p, t) for r in resources for p, t in literal_references(r)]
    assert sorted(found) == sorted(expected) and len(expected) > 1000
    assert ("PractitionerRole/" in " ".join(n for n, _p, _t in found)
            and any(p.startswith("ResearchStudy.site[") and p.endswith("].reference") for _n, p, _t in found))


def test_references_in_extensions_count_and_contained_ones_do_not():
    """The structure walk leaves extensions to the JSON schema and checks contained resources by
    their own type; references under the first are still collected, under the second not (local)."""
    path = Path(__file__).resolve().parents[2] / "data" / "fhir" / "R5-ResearchStudy-example-ctgov-study-record.json"
    example = json.loads(path.read_text(encoding="utf-8"))
    example["extension"] = [{"url": "http://example.org/x", "valueReference": {"reference": "Organization/ext-1"}}]
    example["contained"][0]["partOf"] = [{"reference": "ResearchStudy/not-collected"}]
    found: list = []
    validate_resource(example, references=found)
    targets = [t for _p, t in found]
    assert ("ResearchStudy.extension[0].valueReference.reference", "Organization/ext-1") in found
    assert "ResearchStudy/not-collected" not in targets
    from transforms.fhir.validate import literal_references
    assert sorted(found) == sorted(literal_references(example))


@pytest.mark.parametrize(("element", "change"), [
    ("title", lambda r: r.update(title="Ketamine\u0000 for depression")),
    ("description", lambda r: r.update(description="line\u000bbreak")),  # markdown: a vertical tab
    ("keyword.0.text", lambda r: r.update(keyword=[{"text": "bell\u0007"}])),
    ("status", lambda r: r.update(status="active\u0000")),  # code
    ("identifier.0.system", lambda r: r["identifier"][0].update(system="https://clinicaltrials.gov\u001f")),  # uri
])
def test_control_characters_fhir_strings_cannot_carry_are_caught(seed_resources, element, change):
    """R5: strings (code, uri, markdown too) hold no character below U+0020 but tab, CR and LF. Neither the
    R5 JSON schema's patterns nor fhir.resources said so: a title holding U+0000 was published."""
    problems = validate_resource(mutate(seed_resources[0], change))
    assert problems and any(f": {element}: schema: " in p and "does not match" in p for p in problems), problems


def test_tabs_and_line_breaks_and_any_other_character_stay_valid(seed_resources):
    rs = mutate(seed_resources[0], lambda r: r.update(title="Tab\there,\r\nlines, \u00e9, \u007f, \U0001F600"))
    assert validate_resource(rs) == []
