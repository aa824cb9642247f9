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
from transforms.fhir.validate import _bindings, literal_references

SUITE = "fhir_staging"
KEYS = ["nct_id", "source_file", "source_record", "resource"]


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
    read once (a generator may map them as it goes), and optionally `references`: the
    ('Type/id', path, target) triples validate_resources collected on its walk, so they are not
    walked for again.
    Returns the frames and every 'Type/id' the batch holds (the targets references may point at)."""
    rs, refs, codes, ids = [], [], [], set()
    # Rows as tuples (KEYS order), bound elements split once: per-row dicts and per-resource splits
    # were a fifth of this function's time in a mapping worker.
    bound = [(element, element.split(".")[1:], systems) for element, (_, _m, systems) in _bindings().items()]
    for s in studies:
        key = (s["nct_id"], s["source_file"], s["source_record"])
        found = s.get("references")
        if found is None:
            found = [(f"{r['resourceType']}/{r['id']}", p, t) for r in s["resources"] for p, t in literal_references(r)]
        refs += [(*key, name, p, t) for name, p, t in found]
        for res in s["resources"]:
            rtype = res["resourceType"]
            name = f"{rtype}/{res['id']}"
            ids.add(name)
            if rtype != "ResearchStudy":
                continue
            if not res.get("partOf"):
                rs.append((*key, name))
            for element, parts, systems in bound:
                if parts[0] not in res:  # most bound elements are absent (a site's ResearchStudy has few)
                    continue
                got: list = []
                _codings(res, parts, "ResearchStudy", got)
                codes += [(*key, name, path, element, f"{system}|{code}")
                          for path, system, code in got if system in systems]
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
