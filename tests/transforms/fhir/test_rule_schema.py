"""The rules schema says exactly what the R5 JSON schema and the structure walker say together.

The pipeline accepts a resource on the rules schema's word alone and walks only what it rejects, so a
resource the walker would reject but the rules schema lets through would be published unchecked. The
mutation test below breaks real mapped resources thousands of ways (dropped, emptied, nulled, retyped
elements, codes and systems swapped, references retargeted, choice elements doubled, integers pushed
out of range) and requires the same verdict every time, with each kind of walker rule among them.
"""

from __future__ import annotations

import copy
import random

import orjson
import pytest

from tests.transforms.fhir._corpus import ALL_RECORDS, LAST_UPDATED
from transforms.fhir import MappingError, map_study
from transforms.fhir import rule_schema
from transforms.fhir import validate as v


@pytest.fixture(scope="module")
def corpus_resources() -> list[dict]:
    out: list[dict] = []
    for _name, record in ALL_RECORDS:  # single files, older versions and API pages
        try:
            out += map_study(record, last_updated=LAST_UPDATED)
        except MappingError:
            continue
    return out


def _walker_verdict(resource: dict) -> tuple[bool, list[str]]:
    schema = v._schema_problems(resource, "x")
    walker = v._structure_problems(resource, "x")
    return not schema and not walker, walker if not schema else []


def test_every_mapped_resource_passes(corpus_resources):
    assert len(corpus_resources) > 5000
    assert all(rule_schema.covers(r) for r in corpus_resources)
    rejected = [r["id"] for r in corpus_resources if not rule_schema.passes(r)]
    assert rejected == []


_SYSTEMS = ["http://hl7.org/fhir/research-study-phase", "http://hl7.org/fhir/research-study-status",
            "urn:iso:std:iso:3166", "http://example.org/codes", "http://terminology.hl7.org/CodeSystem/v3-ActCode"]
_CODES = ["phase-1", "phase-5", "recruiting", "completed", "US", "XX", "lead-sponsor", "boss", "", "bogus"]
_TYPES = ["Patient", "Organization", "Location", "Group", "ResearchStudy", "Practitioner", "PractitionerRole",
          "Basic", "EvidenceVariable"]
_JUNK = [None, {}, [], "", 5, -1, 2.5, True, "x", [None], [{}], {"a": 1}, 2**40]


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*path, i))


def _mutate(resource: dict, rng: random.Random) -> dict:
    out = copy.deepcopy(resource)
    for _ in range(rng.choice((1, 1, 1, 2))):
        paths = [p for p in _paths(out) if p]
        special = [p for p in paths if isinstance(p[-1], str)
                   and (p[-1] in ("code", "system", "reference", "type", "coding") or p[-1].startswith("value"))]
        path = rng.choice(special if special and rng.random() < 0.6 else paths)
        parent = out
        for step in path[:-1]:
            parent = parent[step]
        key, value = path[-1], parent[path[-1]]
        move = rng.randrange(12)
        if move == 0 and isinstance(parent, dict):
            del parent[key]
        elif move == 1 and key == "code":
            parent[key] = rng.choice(_CODES)
        elif move == 2 and key == "system":
            parent[key] = rng.choice(_SYSTEMS)
        elif move == 3 and key == "reference":
            parent[key] = rng.choice([f"{rng.choice(_TYPES)}/x1", "#x", "http://a/Patient/1", "urn:uuid:1", "noslash"])
        elif move == 4 and key == "type" and isinstance(parent, dict) and "reference" in parent:
            parent[key] = rng.choice([*_TYPES, ""])
        elif move == 5 and key == "reference":
            del parent[key]
            parent["type"] = rng.choice(_TYPES)
        elif move == 6 and isinstance(key, str) and key.startswith("value") and isinstance(parent, dict):
            parent[rng.choice(["valueBoolean", "valueString", "valueQuantity", "valueCodeableConcept"])] = rng.choice(
                [True, "s", {"value": 1}, {"text": "t"}])
        elif move == 7 and type(value) is int:
            parent[key] = rng.choice([value + 1, -value - 1, 2**31, 0])
        elif move == 8 and isinstance(value, dict):  # extensions are the JSON schema's alone: accepted by both
            value["extension"] = [{"url": "http://e/x", "valueCoding": {"system": _SYSTEMS[0], "code": "bogus"}}]
        elif move == 9 and isinstance(value, list):
            value.append(rng.choice([None, {}, copy.deepcopy(value[0]) if value else 1]))
        elif move == 10 and isinstance(value, dict) and isinstance(value.get("coding"), list):
            value["coding"].append({"system": rng.choice(_SYSTEMS), "code": rng.choice(_CODES)})
        elif move == 11 and key == "coding" and isinstance(value, list) and value:
            # a real code of a system we hold, under a system we hold: right or wrong for the binding
            held = sorted(v._known_systems())
            system, other = rng.choice(held), rng.choice(held)
            value[0] = {"system": system, "code": rng.choice(sorted(v._known_systems()[other]))}
        else:
            parent[key] = copy.deepcopy(rng.choice(_JUNK))  # shared, it could end up inside itself
    return out


def _agree(resources: list[dict], n: int, seed: int) -> tuple[dict[str, int], dict[bool, int]]:
    """Break `n` resources at random; the verdicts must agree every time. Returns the kinds of problem
    only the walker found, and the counts of accepted and rejected."""
    rng = random.Random(seed)
    kinds: dict[str, int] = {}
    verdicts = {True: 0, False: 0}
    for _ in range(n):
        broken = _mutate(rng.choice(resources), rng)
        if not rule_schema.covers(broken):  # resourceType changed: validate_resource walks it
            continue
        walker_ok, walker_problems = _walker_verdict(broken)
        assert rule_schema.passes(broken) == walker_ok, (walker_problems, broken)
        verdicts[walker_ok] += 1
        for problem in walker_problems:  # rejected by the walker only: what the rules schema had to learn
            text = problem.split(": ", 2)[2]
            kind = next((k for k in ("required element missing", "exactly one of", "null or empty", "empty array",
                                     "not allowed", "is not in code system", "bound value set", "is not one of")
                         if k in text), text)
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds, verdicts


def test_rules_schema_and_walker_agree_on_broken_resources(corpus_resources):
    kinds, verdicts = _agree(corpus_resources, 6000, 20261130)
    assert verdicts[True] > 300 and verdicts[False] > 3000
    for kind in ("required element missing", "exactly one of", "null or empty", "empty array", "not allowed",
                 "is not in code system"):
        assert kinds.get(kind, 0) >= 3, kinds


def test_rules_schema_and_walker_agree_on_broken_participants(participant_resources):
    assert {r["resourceType"] for r in participant_resources} == {"Patient", "ResearchSubject"}
    assert all(rule_schema.passes(r) for r in participant_resources)
    kinds, verdicts = _agree(participant_resources, 2500, 5)
    assert verdicts[True] > 100 and verdicts[False] > 1000
    for kind in ("null or empty", "empty array", "is not in code system", "is not one of", "not allowed"):
        assert kinds.get(kind, 0) >= 3, kinds


def test_rules_schema_and_walker_agree_on_every_bound_coding(corpus_resources):
    """Every Coding of a bound ResearchStudy element, given each system we hold (and one we do not, and
    none) with codes of every system: the bindings' verdicts, one by one."""
    systems = sorted(v._known_systems())
    codes = sorted({c for s in systems for c in sorted(v._known_systems()[s])[:2]}) + ["bogus"]
    studies = [copy.deepcopy(r) for r in corpus_resources if r["resourceType"] == "ResearchStudy" and not r.get("partOf")][:2]
    parent_of = "in place"  # each change is undone before the next
    bound = 0
    for study in studies:
        coding_paths = [p for p in _paths(study) if p and p[-1] == "coding"]
        assert coding_paths
        for path in coding_paths:
            for system in [*systems, "http://example.org/other", None]:
                for code in codes:
                    parent = broken = copy.deepcopy(study) if parent_of is None else study
                    for step in path:
                        parent = parent[step]
                    original, parent[0] = parent[0], {"code": code} if system is None else {"system": system, "code": code}
                    walker_ok, walker_problems = _walker_verdict(broken)
                    assert rule_schema.passes(broken) == walker_ok, (walker_problems, path, system, code)
                    bound += any("bound value set" in p for p in walker_problems)
                    parent[0] = original
    assert bound > 100


def test_rules_random_changes_rarely_reach(corpus_resources):
    """Enums of required bindings, integer ranges, and the null and empty checks on elements the walker
    does not walk into (extensions, narrative)."""
    study = next(r for r in corpus_resources if r["resourceType"] == "ResearchStudy" and "recruitment" in r)
    rejected = (lambda r: r.update(status="bogus"), lambda r: r["recruitment"].update(targetNumber=-1),
                lambda r: r["recruitment"].update(targetNumber=2**31), lambda r: r["recruitment"].update(targetNumber=True),
                lambda r: r["recruitment"].update(targetNumber=2.5), lambda r: r.update(extension=[{}]),
                lambda r: r.update(extension=[]), lambda r: r.update(modifierExtension=[None]),
                lambda r: r.update(text={"status": "generated", "div": None}),
                lambda r: r["recruitment"].update(eligibility={"reference": "#local", "type": "Patient"}),
                lambda r: r["recruitment"].update(eligibility={"reference": "Patient/p1"}))
    accepted = (lambda r: r.update(_status={}), lambda r: r.update(extension=[{"url": "http://e", "valueString": "x"}]),
                lambda r: r["recruitment"].update(eligibility={"reference": "/no-type", "type": "Patient"}),
                lambda r: r["recruitment"].update(eligibility={"reference": "#local", "type": "Group"}),
                lambda r: r.update(text={"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'}))
    for changes, verdict in ((rejected, False), (accepted, True)):
        for change in changes:
            changed = copy.deepcopy(study)
            change(changed)
            assert rule_schema.passes(changed) is verdict and _walker_verdict(changed)[0] is verdict, changed


def test_the_one_difference_an_integral_float(corpus_resources):
    """JSON schema's integer takes 2.0 (fhir.resources does too); the walker does not. The mappers emit
    ints only (a float enrollment count is a mapping error), so this is where the two may part."""
    study = next(r for r in corpus_resources if r["resourceType"] == "ResearchStudy" and "recruitment" in r)
    floated = copy.deepcopy(study)
    floated["recruitment"]["targetNumber"] = 2.0
    assert rule_schema.passes(floated) and v._model_problems(floated, "x") == []
    assert not _walker_verdict(floated)[0]


def test_validation_accepts_on_the_rules_schema_without_walking(corpus_resources, monkeypatch):
    def no_walk(*args, **kwargs):
        raise AssertionError("walked a resource the rules schema accepts")

    monkeypatch.setattr(v, "_structure_problems", no_walk)
    assert v.validate_resources(corpus_resources[:300]) == {}


def test_a_rejection_is_explained_in_the_walkers_words(seed_resources):
    broken = copy.deepcopy(seed_resources[0])
    broken["comparisonGroup"][0].pop("name")
    assert v.validate_resource(broken) == ["ResearchStudy/nct06668571: comparisonGroup[0].name: required element missing"]


def test_a_gap_between_the_two_is_reported_not_passed(seed_resources, monkeypatch):
    """Should the rules schema ever reject what the walker accepts, the resource still fails, with the
    rules schema's own reason."""
    real = rule_schema.validator()

    class Stricter:
        def is_valid(self, resource):
            return False

        def iter_errors(self, resource):
            yield from real.iter_errors({**resource, "unknownElement": 1})

    monkeypatch.setattr(rule_schema, "validator", lambda: Stricter())
    problems = v.validate_resource(seed_resources[0])
    assert problems == ["ResearchStudy/nct06668571: (root): rules: Additional properties are not allowed "
                        "('unknownElement' was unexpected)"]


def test_resources_with_contained_ones_and_other_types_are_walked():
    assert not rule_schema.covers({"resourceType": "ResearchStudy", "contained": [{"resourceType": "Group"}]})
    assert not rule_schema.covers({"resourceType": "Observation"})
    assert v.validate_resource({"resourceType": "Observation", "id": "o1"})  # status and code missing


def test_serialized_references_are_the_walks_references(corpus_resources):
    for res in corpus_resources:
        text = orjson.dumps(res).decode()
        assert v.serialized_reference_targets(text) == [t for _p, t in v.literal_references(res)]
    tricky = {"resourceType": "Group", "id": "g", "name": 'say "reference":"Patient/1"',
              "extension": [{"url": "http://e", "valueReference": {"reference": 'Organization/a\\"b'}}],
              "managingEntity": {"reference": "#local"}}
    assert v.serialized_reference_targets(orjson.dumps(tricky).decode()) == ['Organization/a\\"b']
    assert [t for _p, t in v.literal_references(tricky)] == ['Organization/a\\"b']
    # escapes before and after plain ones: a value ending in a backslash, one with a quote, then a plain one
    several = {"resourceType": "Group", "id": "g", "characteristic": [
        {"valueReference": {"reference": "Organization/x\\"}}, {"valueReference": {"reference": 'Location/"q"'}},
        {"valueReference": {"reference": "Location/plain"}}, {"valueReference": {"reference": "#c"}}]}
    assert v.serialized_reference_targets(orjson.dumps(several).decode()) == [
        t for _p, t in v.literal_references(several)] == ["Organization/x\\", 'Location/"q"', "Location/plain"]
