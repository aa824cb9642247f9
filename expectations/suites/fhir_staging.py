"""Suite `fhir_staging`: the staged FHIR resources of a batch, as a whole.

Per-resource validation (structure, cardinality, JSON schema, bound codes) already ran in the
staging step; this suite checks what only the batch can show, in great-expectations terms so it is
in the Data Docs: one ResearchStudy per study, every reference resolves to a staged resource, and
every code of a bound ResearchStudy element is in its R5 value set.
"""
from __future__ import annotations

from typing import Iterable

import pandas as pd

from expectations.runtime import Rule
from transforms.fhir.validate import _bindings

SUITE = "fhir_staging"
KEYS = ["nct_id", "source_file", "source_record", "resource"]


def _walk_refs(node, path: list, out):
    """Literal references under `node`; `path` is a shared stack of keys and indexes, spelled out
    only where a reference is found (formatting every node's path was a quarter of a worker's time)."""
    if type(node) is dict:
        ref = node.get("reference")
        if type(ref) is str and not ref.startswith("#"):
            out.append((_path(path) + ".reference", ref))
        for k, v in node.items():
            if k != "contained" and type(v) in _CONTAINERS:
                path.append(k)
                _walk_refs(v, path, out)
                path.pop()
    else:
        for i, v in enumerate(node):
            if type(v) in _CONTAINERS:
                path.append(i)
                _walk_refs(v, path, out)
                path.pop()


_CONTAINERS = (dict, list)


def _path(path: list) -> str:
    return "".join(f"[{p}]" if type(p) is int else (f".{p}" if i else p) for i, p in enumerate(path))


def _codings(node, parts, path, out):
    if not parts:
        if isinstance(node, dict):
            for i, c in enumerate(node.get("coding") or ([node] if "code" in node else [])):
                if isinstance(c, dict) and c.get("code") is not None:
                    out.append((path, c.get("system"), str(c["code"])))
        return
    if isinstance(node, list):
        for i, v in enumerate(node):
            _codings(v, parts, f"{path}[{i}]", out)
    elif isinstance(node, dict) and parts[0] in node:
        _codings(node[parts[0]], parts[1:], f"{path}.{parts[0]}", out)


def frames(studies: Iterable[dict]) -> tuple[dict[str, pd.DataFrame], set[str]]:
    """`studies`: dicts with nct_id, source_file, source_record and `resources` (map_study output),
    read once (a generator may map them as it goes).
    Returns the frames and every 'Type/id' the batch holds (the targets references may point at)."""
    rs, refs, codes, ids = [], [], [], set()
    bindings = _bindings()
    for s in studies:
        key = {k: s[k] for k in ("nct_id", "source_file", "source_record")}
        for res in s["resources"]:
            name = f"{res['resourceType']}/{res['id']}"
            ids.add(name)
            found: list = []
            _walk_refs(res, [res["resourceType"]], found)
            refs += [{**key, "resource": name, "field": p, "target": t} for p, t in found]
            if res["resourceType"] == "ResearchStudy" and not res.get("partOf"):
                rs.append({**key, "resource": name})
            if res["resourceType"] == "ResearchStudy":
                for element, (_, members, systems) in bindings.items():
                    got: list = []
                    _codings(res, element.split(".")[1:], "ResearchStudy", got)
                    for path, system, code in got:
                        if system in systems:
                            codes.append({**key, "resource": name, "field": path, "element": element,
                                          "code": f"{system}|{code}"})
    return {
        "research_study": pd.DataFrame(rs, columns=KEYS),
        "reference": pd.DataFrame(refs, columns=KEYS + ["field", "target"]),
        "bound_code": pd.DataFrame(codes, columns=KEYS + ["field", "element", "code"]),
    }, ids


def rules(resource_ids: set[str], studies: int) -> list[Rule]:
    pairs = [(element, f"{system}|{code}") for element, (_, members, _s) in _bindings().items() for system, code in members]
    return [
        Rule("one_research_study_per_study", "research_study", "nct_id", "ResearchStudy",
             lambda g: g.expectations.ExpectColumnValuesToBeUnique(column="nct_id"),
             message="has more than one top-level ResearchStudy"),
        Rule("every_study_has_a_research_study", "research_study", "nct_id", "ResearchStudy",
             lambda g, n=studies: g.expectations.ExpectTableRowCountToEqual(value=n),
             level="batch", message="the batch's studies and its ResearchStudy resources differ in number"),
        Rule("references_resolve", "reference", "target", "reference",
             lambda g, ids=sorted(resource_ids): g.expectations.ExpectColumnValuesToBeInSet(column="target", value_set=ids),
             message="refers to a resource that is not part of the study's export"),
        Rule("codes_in_bound_value_sets", "bound_code", "code", "coding",
             lambda g, pairs=pairs: g.expectations.ExpectColumnPairValuesToBeInSet(
                 column_A="element", column_B="code", value_pairs_set=pairs),
             message="is not in the element's bound R5 value set"),
    ]
