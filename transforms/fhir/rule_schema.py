"""The structure walker's rules written into the R5 JSON schema, so a valid resource is judged in Rust.

The walker in `validate.py` applies what the R5 JSON schema leaves out (min cardinality, choice
elements, required-binding enums, reference targets, integer ranges, null and empty values, codes of
the code systems we hold, ResearchStudy's bound value sets). Walking every resource's dicts in Python
was the largest part of a mapping worker's time (~0.21 of 0.57 ms a study); the same rules as
JSON-schema keywords cost jsonschema-rs ~0.02 ms a study more than the plain schema (0.089 against
0.067-0.070). So the pipeline asks this schema first and walks only when it says no, to say what is
wrong in the walker's words.

The one difference: JSON schema's `integer` takes 2.0 (so does fhir.resources), the walker does not.
A Python keyword for it made every resource slower to check; the mappers emit ints only.

Why copies: each definition the walker walks with a model gets a `<name>__rules` copy carrying that
model's rules, and the copies refer to one another. The plain definitions stay as they are, because
the walker does not walk everywhere: extensions are left to the JSON schema (a Coding inside an
extension is not checked against our code systems), and neither are `_element` extensions. The
bindings go on the properties of ResearchStudy's own copies, which only a top-level ResearchStudy
reaches, as the walker applies them only there.

Not covered (the caller walks instead): resource types outside the emitted ones, and resources with
`contained` resources, whose rules depend on each contained resource's own type.
"""

from __future__ import annotations

from functools import cache

import jsonschema_rs
from fhir.resources import get_fhir_model_class

from . import validate as _v

SUFFIX = "__rules"


def _target(prop: dict) -> str | None:
    """The definition a property's value (or each item of its array) refers to."""
    ref = prop.get("$ref") or (prop.get("items") or {}).get("$ref")
    return ref.rsplit("/", 1)[1] if ref else None


def _ref(name: str) -> dict:
    return {"$ref": f"#/definitions/{name}"}


def _reference_rule(allowed: frozenset) -> dict:
    """The walker's `_check_reference`: the target is the literal's type prefix where the literal has
    one (not local, not absolute), else `type`; either must be an allowed type, or empty (a literal
    `/x` names no type, and the walker lets it be)."""
    alts = "|".join(sorted(allowed))
    untyped_literal = {"anyOf": [
        {"not": {"required": ["reference"]}},
        {"properties": {"reference": {"anyOf": [
            {"not": {"type": "string"}}, {"pattern": "^(#|http:|https:|urn:)"}, {"pattern": "^[^/]*$"}]}}},
    ]}
    return {"anyOf": [
        {"required": ["reference"], "properties": {"reference": {"type": "string", "pattern": f"^({alts}|)/"}}},
        {"allOf": [untyped_literal, {"anyOf": [{"not": {"required": ["type"]}},
                                               {"properties": {"type": {"enum": ["", *sorted(allowed)]}}}]}]},
    ]}


def _coding_rules() -> list[dict]:
    """`_check_coding`'s first half: a code of a system we hold must be one of its codes."""
    return [{"if": {"properties": {"system": {"const": system}}, "required": ["system", "code"]},
             "then": {"properties": {"code": {"enum": sorted(codes)}}}}
            for system, codes in sorted(_v._known_systems().items())]


def _binding_rule(strength: str, members: frozenset, vs_systems: frozenset) -> dict:
    """`_check_coding`'s second half, for one Coding: a code of the value set's systems must be a
    member; another system is wrong when the binding is required or the system is one we hold."""
    by_system: dict[str, list[str]] = {}
    for system, code in members:
        by_system.setdefault(system, []).append(code)
    allowed: list[dict] = [{"required": ["system"], "properties": {"system": {"const": s}, "code": {"enum": sorted(c)}}}
                           for s, c in sorted(by_system.items())]
    if strength != "required":
        held = sorted(set(vs_systems) | set(_v._known_systems()))
        allowed += [{"not": {"required": ["system"]}},
                    {"required": ["system"], "properties": {"system": {"not": {"enum": held}}}}]
    return {"if": {"required": ["code"]}, "then": {"anyOf": allowed}}


def build(types: tuple[str, ...]) -> dict:
    """The schema: a root that picks the type's `__rules` definition by resourceType, and R5's
    definitions plus the copies."""
    full = _v._schema()
    defs = dict(full["definitions"])
    paired: dict[str, type] = {}
    todo = [(get_fhir_model_class(t), t) for t in types]
    while todo:
        model, name = todo.pop()
        if name in paired:
            if paired[name] is not model:
                raise ValueError(f"definition {name} is walked with two models: {paired[name]} and {model}")
            continue
        paired[name] = model
        plan = _v._PLANS.get(model) or _v._plan(model)
        source = full["definitions"][name]
        props = dict(source["properties"])
        rules: list[dict] = []
        for key, extension_key in plan.required:
            rules.append({"anyOf": [{"required": [key]}, {"required": [extension_key]}]}
                         if extension_key in props else {"required": [key]})
        for keys, required in plan.groups.values():
            one = {"oneOf": [{"required": [k]} for k in keys]}
            rules.append(one if required else {"anyOf": [{"not": {"anyOf": [{"required": [k]} for k in keys]}}, one]})
        if plan.coding:
            rules += _coding_rules()
        for key, (child, enum, refs, bounds) in plan.fields.items():
            if key not in props:
                raise ValueError(f"{model.__name__}.{key} has no property in the R5 schema's {name}")
            if child is _v._ANY_RESOURCE:
                if key != "contained":
                    raise ValueError(f"{model.__name__}.{key} holds resources of any type, which only "
                                     "`contained` may; the rules schema does not cover it")
                continue  # resources with contained ones are walked, never judged here
            prop = props[key]
            target = _target(prop)
            is_array = prop.get("type") == "array"
            if child is not None:
                todo.append((child, target))
                item = _ref(target + SUFFIX)
            elif target is not None:
                item = _ref(target)
            else:  # an inline schema (a choice element's boolean, say)
                item = {k: v for k, v in (prop["items"] if is_array else prop).items() if k != "description"}
            extra: dict = {}
            target_def = full["definitions"][target] if target is not None else item
            if child is None and target_def.get("type") == "object":
                extra["minProperties"] = 1  # the walker's "null or empty value" for an unwalked object
            if "type" not in target_def:
                extra["not"] = {"type": "null"}
            if enum is not None:
                extra["enum"] = sorted(enum)
            if bounds is not None:  # JSON schema's integer also takes 2.0, as fhir.resources does; the walker not
                extra.update(type="integer", minimum=bounds[0], maximum=bounds[1])
            if refs is not None and "Resource" not in refs:
                extra.update(_reference_rule(refs))
            if extra:
                item = {"allOf": [item, extra]}
            props[key] = {"type": "array", "minItems": 1, "items": item} if is_array else item
        copy = {k: v for k, v in source.items() if k != "description"}
        copy.update(properties=props, minProperties=1)
        if rules:
            copy["allOf"] = rules
        defs[name + SUFFIX] = copy
    _bind(defs, paired)
    return _v.by_resource_type(defs, types, SUFFIX)


def _bind(defs: dict, paired: dict) -> None:
    """Put each ResearchStudy binding on the property its element path names, in the copies. The walker
    looks a binding up at a Coding (by its own path) and at the Codings of a CodeableConcept (by the
    CodeableConcept's path), so only elements of those two types are bound; others are skipped."""
    for path, binding in _v._bindings().items():
        parts = path.split(".")
        if parts[0] != "ResearchStudy" or len(parts) < 2 or "ResearchStudy" not in paired:
            continue
        name = "ResearchStudy"
        for key in parts[1:-1]:
            name = _target(defs[name]["properties"].get(key, {}))
            if name is None or name not in paired:
                break
        else:
            props = defs[name + SUFFIX]["properties"]
            key = parts[-1]
            kind = _target(defs[name]["properties"].get(key, {}))
            if kind not in ("Coding", "CodeableConcept"):
                continue
            check = _binding_rule(*binding)
            if kind == "CodeableConcept":
                check = {"properties": {"coding": {"items": check}}}
            prop = props[key]
            if prop.get("type") == "array":
                props[key] = {**prop, "items": {"allOf": [prop["items"], check]}}
            else:
                props[key] = {"allOf": [prop, check]}


@cache
def validator():
    """The compiled rules schema for the emitted types (one per process, ~0.1 s and ~20 MB).

    No custom keyword: one Python keyword anywhere made every resource slower to check (Organization
    0.7 -> 1.3 us), as the validator then no longer reads the Python objects directly."""
    return jsonschema_rs.validator_for(build(_v.COMMON_TYPES))


def covers(resource: dict) -> bool:
    return resource.get("resourceType") in _v.COMMON_TYPES and "contained" not in resource


def passes(resource: dict) -> bool:
    """True when the resource satisfies the R5 schema and every walker rule; only for covered ones."""
    return validator().is_valid(resource)


def problems(resource: dict, where: str) -> list[str]:
    """The rules schema's own errors: reported only if it rejects what the walker let through, which
    the tests rule out, so a gap between the two is never a silent pass."""
    return _v.schema_errors(validator(), resource, where, "rules")
