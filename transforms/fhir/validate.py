"""Validation of emitted FHIR resources at three levels.

1. Structure and cardinality, as fhir.resources (pydantic models of R5) defines them.
2. The official R5 JSON schema (`schemas/fhir/R5-fhir.schema.json`, patched to compile), with
   jsonschema-rs.
3. Codes: every Coding that claims a code system we hold (the R5 terminology bundle, ISO 3166)
   must use a code of that system, and codes in ResearchStudy elements bound to a bundle value
   set (any strength: phase is only an `example` binding but a phase code must still be a phase)
   must come from that value set; codes of required bindings must be members.

Why level 1 is not fhir.resources itself on the hot path: mapping + `model_validate` +
`model_dump_json` runs about 50 studies/s per core here (benchmarks/fhir_mapping.py, all real
records, ~41 resources per study), over three hours for the 600,000-study registry; this fast
path runs 330-640 studies/s on the same core (7-13x; the machine is shared, so figures vary). The JSON schema
already checks what fhir.resources checks about types, primitive formats, max cardinality and
unknown elements; what it cannot check is min cardinality (it lists no required primitives)
and choice elements (`value[x]`: exactly one). Those rules are read once from the same
fhir.resources model metadata (`element_required`, `one_of_many`, non-optional fields) into
plain tables, and a dict walker applies them. The walker also enforces what fhir.resources
misses: required-binding code enums (`enum_values`, e.g. ResearchStudy.status), reference
target types, null values and empty arrays/objects. `mode="full"` runs fhir.resources itself
instead of the walker; tests assert that both modes reject the same broken resources.

The walker itself now runs only on resources that fail: `rule_schema` writes the same rules into a
copy of the R5 schema, and a resource of an emitted type that passes it is valid without a walk
(the walk was 0.21 of a mapping worker's 0.57 ms a study; the rules schema adds 0.02 ms to the plain
one). A rejected resource is walked so its problems read as before; tests require the two to agree.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterable
from functools import cache, lru_cache

import jsonschema_rs
from fhir.resources import get_fhir_model_class
from pydantic import ValidationError

from . import terminology, vocab
from .countries import ISO_CODES

SCHEMA_PATH = terminology.SCHEMA_DIR / "R5-fhir.schema.json"
SD_PATH = terminology.SCHEMA_DIR / "R5-StructureDefinition-ResearchStudy.json"


# ---------------------------------------------------------------- level 2: JSON schema
@lru_cache(maxsize=1)
def _schema() -> dict:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    for name, pattern in NO_CONTROL_CHARACTERS.items():
        schema["definitions"][name]["pattern"] = pattern
    return schema


# R5 (datatypes, string): "Strings SHALL NOT contain Unicode character points below 32, except for
# u0009 (horizontal tab), u0010 (carriage return) and u0013 (line feed)", and code, uri, url and
# canonical are strings. The JSON schema's patterns do not say it (`^[\s\S]+$`, `^\S*$`: \S takes a
# NUL), nor does fhir.resources, so a registry title holding U+0000 was published and exported as
# `\u0000` (a fuzzing review). The same patterns with the control characters left out.
_CONTROL = r"\x00-\x08\x0B\x0C\x0E-\x1F"
CONTROL_CHARACTER = re.compile(f"[{_CONTROL}]")  # for checks of values before they are mapped
NO_CONTROL_CHARACTERS = {
    "string": f"^[^{_CONTROL}]+$",
    "markdown": f"^[^{_CONTROL}]+$",
    "code": r"^[^\s\x00-\x1F]+( [^\s\x00-\x1F]+)*$",
    "uri": r"^[^\s\x00-\x1F]*$",
    "url": r"^[^\s\x00-\x1F]*$",
    "canonical": r"^[^\s\x00-\x1F]*$",
}


# The types the mappers emit. Compiling a type's schema compiles nearly all of R5 (every resource
# can be contained in another), ~21 MB and 0.06 s per type: a process validating nine types held
# ~200 MB of validators, in the run process and in every mapping worker. One validator picks the
# type's definition by resourceType (if/then, which needs draft-07; draft-07 only adds keywords the
# FHIR schema does not use) and compiles R5 once.
COMMON_TYPES = ("ResearchStudy", "Practitioner", "PractitionerRole", "Group", "EvidenceVariable", "Location",
                "Organization", "ResearchSubject", "Patient")


def by_resource_type(definitions: dict, types: tuple[str, ...], suffix: str = "") -> dict:
    """A draft-07 root that checks each resource against the definition `<resourceType><suffix>`."""
    branches = [{"if": {"properties": {"resourceType": {"const": t}}, "required": ["resourceType"]},
                 "then": {"$ref": f"#/definitions/{t}{suffix}"}} for t in types]
    return {"$schema": "http://json-schema.org/draft-07/schema#", "allOf": branches, "definitions": definitions}


@cache
def _common_validator():
    return jsonschema_rs.validator_for(by_resource_type(_schema()["definitions"], COMMON_TYPES))


@cache
def _schema_validator(resource_type: str):
    full = _schema()
    if resource_type not in full["definitions"]:
        return None
    if resource_type in COMMON_TYPES:
        return _common_validator()
    root = {"$schema": full["$schema"], "$ref": f"#/definitions/{resource_type}", "definitions": full["definitions"]}
    return jsonschema_rs.validator_for(root)


def _schema_problems(resource: dict, where: str) -> list[str]:
    v = _schema_validator(resource.get("resourceType"))
    if v is None:
        return [f"{where}: unknown resourceType {resource.get('resourceType')!r}"]
    return [] if v.is_valid(resource) else schema_errors(v, resource, where, "schema")


def schema_errors(validator, resource: dict, where: str, label: str) -> list[str]:
    """A compiled schema's errors as problem lines: 'Type/id: element path: label: message'."""
    out = []
    for e in validator.iter_errors(resource):
        path = ".".join(str(p) for p in e.instance_path) or "(root)"
        out.append(f"{where}: {path}: {label}: {e.message[:300]}")
    return out


# ---------------------------------------------------------------- level 1: structure rules
class _Plan:
    __slots__ = ("codeable", "coding", "fields", "groups", "kind", "models", "reference", "required")

    def __init__(self, kind: str) -> None:
        self.kind = kind  # model name: Coding and CodeableConcept get code checks
        self.coding, self.codeable, self.reference = kind == "Coding", kind == "CodeableConcept", kind == "Reference"
        self.required: list[tuple[str, str]] = []  # (key, "_" + key): a primitive's extension counts
        self.groups: dict[str, tuple[list[str], bool]] = {}
        # json key -> (child model, enum values, allowed reference types, (min, max) of an integer);
        # each None when it does not apply
        self.fields: dict[str, tuple] = {}
        # json keys whose only rule is their child model's: an object there is walked directly
        self.models: frozenset[str] = frozenset()


def _inner_type(annotation):
    """Unwrap Optional[List[X]] / X | None down to X."""
    while True:
        args = typing.get_args(annotation)
        if not args:
            return annotation
        non_none = [a for a in args if a is not type(None)]
        if typing.get_origin(annotation) is typing.Annotated:
            return args[0]
        if len(non_none) != 1:
            return annotation
        annotation = non_none[0]


_INT_BOUNDS = {"UnsignedInt": (0, 2**31 - 1), "PositiveInt": (1, 2**31 - 1), "Integer": (-(2**31), 2**31 - 1)}


def _int_bounds(annotation):
    """JSON schema types FHIR integers as `number` (1.5 and -1 pass as unsignedInt); fhir.resources does not."""
    stack = [annotation]
    while stack:
        a = stack.pop()
        for m in getattr(a, "__metadata__", ()):
            if type(m).__name__ in _INT_BOUNDS:
                return _INT_BOUNDS[type(m).__name__]
        stack.extend(typing.get_args(a))
    return None


def _optional(annotation) -> bool:
    return type(None) in typing.get_args(annotation)


_PLANS: dict[type, _Plan] = {}
_LEAF = (None, None, None, None)  # a primitive with no code, reference or range rule: one shared object
_ANY_RESOURCE = object()  # marker: the model depends on the JSON object's resourceType


def _plan(model: type) -> _Plan:
    plan = _Plan(model.__name__)
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra or {}
        if name == "fhir_comments" or name.endswith("__ext") or not extra.get("element_property"):
            continue
        key = field.alias or name
        if extra.get("element_required") or not _optional(field.annotation):
            plan.required.append((key, "_" + key))
        group = extra.get("one_of_many")
        if group:
            keys, req = plan.groups.get(group, ([], False))
            keys.append(key)
            plan.groups[group] = (keys, req or bool(extra.get("one_of_many_required")))
        inner = _inner_type(field.annotation)
        child = None
        if hasattr(inner, "get_model_klass"):
            klass = inner.get_model_klass()
            if klass.__name__ == "Resource":
                child = _ANY_RESOURCE  # contained: rules of the resource's own type
            elif klass.__name__ != "Extension":  # extensions: JSON schema only
                child = klass
        enum = frozenset(extra["enum_values"]) if extra.get("enum_values") else None
        refs = frozenset(extra["enum_reference_types"]) if extra.get("enum_reference_types") else None
        if getattr(child, "__name__", None) != "Reference":
            refs = None
        spec = (child, enum, refs, _int_bounds(field.annotation))
        plan.fields[key] = _LEAF if spec == _LEAF else spec
    plan.models = frozenset(k for k, (child, enum, refs, bounds) in plan.fields.items()
                            if child is not None and child is not _ANY_RESOURCE and enum is refs is bounds is None)
    _PLANS[model] = plan
    return plan


@lru_cache(maxsize=1)
def _bindings() -> dict[str, tuple[str, frozenset, frozenset]]:
    """ResearchStudy element path -> (strength, value-set members, value-set systems), bundle value sets only."""
    sd = json.loads(SD_PATH.read_text(encoding="utf-8"))
    out = {}
    for el in sd["snapshot"]["element"]:
        b = el.get("binding") or {}
        members = terminology.expansion(b["valueSet"]) if b.get("valueSet") else None
        if members is not None:
            out[el["path"]] = (b["strength"], members, frozenset(s for s, _ in members))
    return out


@lru_cache(maxsize=1)
def _known_systems() -> dict[str, frozenset]:
    systems = {url: frozenset(codes) for url, codes in terminology._load()[0].items()}
    systems[vocab.ISO3166_SYSTEM] = ISO_CODES
    return systems


def _fmt(path: list) -> str:
    """Element path for messages, built only when there is something to report."""
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else seg)
    return out or "(root)"


def _check_coding(coding: dict, path: list, binding, out: list[str], where: str) -> None:
    system, code = coding.get("system"), coding.get("code")
    if not isinstance(system, (str, type(None))) or not isinstance(code, (str, type(None))):
        return  # a list or an object here is the JSON schema's to report (and unhashable)
    known = _known_systems().get(system)
    if known is not None and code is not None and code not in known:
        out.append(f"{where}: {_fmt(path)}: code {code!r} is not in code system {system}")
        return
    if binding is None or code is None:
        return
    strength, members, vs_systems = binding
    if system in vs_systems:
        if (system, code) not in members:
            out.append(f"{where}: {_fmt(path)}: code {code!r} is not in the bound value set")
    elif strength == "required" or system in _known_systems():
        out.append(f"{where}: {_fmt(path)}: code {system}|{code} is not from the bound value set")


def _check_reference(ref: dict, allowed: frozenset, path: list, out: list[str], where: str) -> None:
    target = ref.get("type")
    literal = ref.get("reference")
    if isinstance(literal, str) and "/" in literal and not literal.startswith(("#", "http:", "https:", "urn:")):
        target = literal.split("/", 1)[0]
    if type(target) is not str:
        return  # the JSON schema reports a `type` that is not a uri (and a dict is unhashable)
    if target and "Resource" not in allowed and target not in allowed:
        out.append(f"{where}: {_fmt(path)}: reference to {target} not allowed "
                   f"(allowed: {', '.join(sorted(allowed))})")


def _check_item(item, spec, path: list, el_path, bindings, out: list[str], where: str, found) -> None:
    child, enum, refs, bounds = spec
    if item is None or item == {}:
        out.append(f"{where}: {_fmt(path)}: null or empty value")
    elif enum is not None:
        if type(item) is not str or item not in enum:  # not hashed unless a str: [] or {} would raise
            out.append(f"{where}: {_fmt(path)}: code {item!r} is not one of {sorted(enum)}")
    elif bounds is not None:
        if type(item) is not int or not bounds[0] <= item <= bounds[1]:
            out.append(f"{where}: {_fmt(path)}: {item!r} is not an integer in [{bounds[0]}, {bounds[1]}]")
    elif child is not None and type(item) is dict:
        if refs is not None:
            _check_reference(item, refs, path, out, where)
        if child is _ANY_RESOURCE:  # contained: its references are local to it, not collected
            try:
                _walk(item, get_fhir_model_class(item.get("resourceType")), path, None, None, out, where, None)
            except (ValueError, TypeError):
                out.append(f"{where}: {_fmt(path)}: unknown resourceType {item.get('resourceType')!r}")
        else:
            _walk(item, child, path, el_path, bindings, out, where, found)


def _walk(obj: dict, model: type, path: list, el_path, bindings, out: list[str], where: str, found) -> None:
    """Apply the model's rules to one JSON object; `path` is a shared stack of keys and indexes.

    `found`, when a list, collects (path, target) of every literal reference on the way (see
    validate_resource); None inside contained resources."""
    plan = _PLANS.get(model) or _plan(model)
    for key, extension_key in plan.required:
        if key not in obj and extension_key not in obj:
            out.append(f"{where}: {_fmt([*path, key])}: required element missing")
    if plan.groups:
        for group, (keys, req) in plan.groups.items():
            n = sum(1 for k in keys if k in obj)
            if n > 1 or (req and n == 0):
                out.append(f"{where}: {_fmt([*path, group])}[x]: exactly one of {', '.join(keys)} expected, found {n}")
    if plan.coding:
        _check_coding(obj, path, bindings.get(el_path) if bindings else None, out, where)
    if found is not None:
        if plan.reference:
            ref = obj.get("reference")
            if type(ref) is str and not ref.startswith("#"):
                found.append((_fmt([*path, "reference"]), ref))
        if "extension" in obj or "modifierExtension" in obj:  # the walk leaves extensions to the JSON schema
            for key in ("extension", "modifierExtension"):
                if type(obj.get(key)) is list:
                    path.append(key)
                    _walk_references(obj[key], path, found)
                    path.pop()
    fields, models, codeable = plan.fields, plan.models, plan.codeable
    for key, value in obj.items():
        spec = fields.get(key)
        if spec is None:
            continue  # unknown keys are reported by the JSON schema
        if spec is _LEAF:  # most elements are plain primitives: only null/empty to check, no path kept
            if type(value) is list:
                if value and None not in value and {} not in value:
                    continue
            elif value is not None and value != {}:
                continue
        path.append(key)
        # Element path for binding lookup; Codings of a CodeableConcept answer to its binding.
        sub = None if bindings is None else (el_path if codeable else f"{el_path}.{key}")
        if key in models:  # a non-empty object here is walked with no other rule to apply first
            child = spec[0]
            if type(value) is list:
                if not value:
                    out.append(f"{where}: {_fmt(path)}: empty array")
                for i, item in enumerate(value):
                    path.append(i)
                    if type(item) is dict and item:
                        _walk(item, child, path, sub, bindings, out, where, found)
                    else:
                        _check_item(item, spec, path, sub, bindings, out, where, found)
                    path.pop()
            elif type(value) is dict and value:
                _walk(value, child, path, sub, bindings, out, where, found)
            else:
                _check_item(value, spec, path, sub, bindings, out, where, found)
        elif type(value) is list:
            if not value:
                out.append(f"{where}: {_fmt(path)}: empty array")
            for i, item in enumerate(value):
                path.append(i)
                _check_item(item, spec, path, sub, bindings, out, where, found)
                path.pop()
        else:
            _check_item(value, spec, path, sub, bindings, out, where, found)
        path.pop()


def _walk_references(node, path: list, found: list) -> None:
    """Every literal reference under `node` (no model needed), outside contained resources; the
    path is spelled out only where a reference is found."""
    if type(node) is dict:
        ref = node.get("reference")
        if type(ref) is str and not ref.startswith("#"):
            found.append((_fmt([*path, "reference"]), ref))
        for k, v in node.items():
            if k != "contained" and type(v) in _CONTAINERS:
                path.append(k)
                _walk_references(v, path, found)
                path.pop()
    else:
        for i, v in enumerate(node):
            if type(v) in _CONTAINERS:
                path.append(i)
                _walk_references(v, path, found)
                path.pop()


_CONTAINERS = (dict, list)


def literal_references(resource: dict) -> list[tuple[str, str]]:
    """(element path, target) of every literal reference of a resource outside `contained`, the
    path spelled from its type (`ResearchStudy.site[0].reference`); local ('#...') ones left out."""
    found: list = []
    _walk_references(resource, [], found)
    return _typed(resource, found)


# A literal reference in compact JSON (orjson's output): inside a string every quote is escaped, so
# `"reference":"` followed by a string can only be a key and its value.
_REFERENCE_KEY = '"reference":"'
_SERIALIZED_REFERENCE = re.compile(r'"reference":"((?:[^"\\]|\\.)*)"')


def serialized_reference_targets(text: str) -> list[str]:
    """The targets `literal_references` finds, in the same order, read from the resource's compact JSON:
    the mapping worker serializes every resource anyway, and walking the dicts for references cost
    several times this. Only for a resource without `contained` ones (the walk leaves their
    references out; this cannot tell).

    `str.find` for the key and the closing quote, the regular expression only for a value with an
    escape in it: findall over every resource was 39 us a study, this 18 (2,000 studies, ~22
    resources each, about half with references)."""
    out = []
    i = text.find(_REFERENCE_KEY)
    while i >= 0:
        start = i + len(_REFERENCE_KEY)
        end = text.find('"', start)
        target = text[start:end]
        if "\\" in target:  # the quote found may be escaped: the expression finds the value's end
            m = _SERIALIZED_REFERENCE.match(text, i)
            target, end = json.loads(f'"{m.group(1)}"'), m.end() - 1
        if not target.startswith("#"):
            out.append(target)
        i = text.find(_REFERENCE_KEY, end + 1)
    return out


def _typed(resource: dict, found: list) -> list[tuple[str, str]]:
    """Walk paths start below the resource (as in problem messages); a reference's path names its type."""
    rtype = resource.get("resourceType")
    return [(f"{rtype}.{p}", target) for p, target in found]


def _structure_problems(resource: dict, where: str, found: list | None = None) -> list[str]:
    rtype = resource.get("resourceType")
    try:
        model = get_fhir_model_class(rtype)
    except (ValueError, TypeError):
        return [f"{where}: unknown resourceType {rtype!r}"]
    out: list[str] = []
    bindings = _bindings() if rtype == "ResearchStudy" else None
    _walk(resource, model, [], rtype, bindings, out, where, found)
    return out


def _model_problems(resource: dict, where: str) -> list[str]:
    """Level 1 the slow way: fhir.resources itself (used by mode='full' and the benchmark)."""
    try:
        model = get_fhir_model_class(resource.get("resourceType"))
        model.model_validate(resource)
    except (ValidationError, ValueError, TypeError) as exc:  # invalid, or unknown type
        lines = str(exc).splitlines()
        return [f"{where}: fhir.resources: {' / '.join(line.strip() for line in lines[1:3]) or lines[0]}"]
    return []


# ---------------------------------------------------------------- public API
def validate_resource(resource: dict, *, mode: str = "fast", references: list | None = None) -> list[str]:
    """Readable problems with one resource, each prefixed 'Type/id: element path'; [] if valid.

    mode='fast': JSON schema + structure/code walker (the pipeline default); a resource the rules schema
    accepts (see rule_schema) is not walked, unless `references` asks for the walk's references.
    mode='full': additionally fhir.resources model validation (slow; tests and audits).
    `references`, when a list, gets (element path, target) of the resource's literal references
    (as `literal_references()` finds them), collected on the structure walk: the gate's reference frame
    then costs no second walk over every resource (a fifth of a mapping worker's time).
    """
    if not isinstance(resource, dict):
        return [f"(not a resource): expected a JSON object, got {type(resource).__name__}"]
    from . import rule_schema  # it reads this module's rule tables

    covered = mode == "fast" and rule_schema.covers(resource)
    if covered and references is None and rule_schema.passes(resource):
        return []  # every rule below holds: judged in Rust (see rule_schema)
    where = f"{resource.get('resourceType')}/{resource.get('id')}"
    problems = _schema_problems(resource, where)
    found: list | None = [] if references is not None else None
    problems += _structure_problems(resource, where, found)
    if found:
        references += _typed(resource, found)
    if covered and not problems and not rule_schema.passes(resource):
        problems = rule_schema.problems(resource, where)  # never a silent pass if the two ever differ
    if mode == "full":
        problems += _model_problems(resource, where)
    elif mode != "fast":
        raise ValueError(f"unknown mode {mode!r}")
    return problems


def validate_resources(resources: Iterable[dict], *, mode: str = "fast",
                       references: list | None = None) -> dict[str, list[str]]:
    """Problems per 'Type/id', only for resources that have any.

    `references`, when a list, gets ('Type/id', element path, target) of every literal reference."""
    out: dict[str, list[str]] = {}
    for res in resources:
        found: list | None = [] if references is not None else None
        problems = validate_resource(res, mode=mode, references=found)
        key = f"{res.get('resourceType')}/{res.get('id')}" if isinstance(res, dict) else "?"
        if found:
            references += [(key, p, t) for p, t in found]
        if problems:
            out.setdefault(key, []).extend(problems)
    return out
