"""State shared by the per-element mappers while one study is mapped.

Resources are collected in first-seen order and keyed by (type, id), so a mapper that meets an
organisation or practitioner twice gets the same reference back instead of a duplicate resource.
"""

from __future__ import annotations

from .ids import IdAllocator, study_id


class StudyContext:
    def __init__(self, record: dict, nct_id: str, version_id: str, last_updated: str | None) -> None:
        self.record = record
        self.protocol = record.get("protocolSection") or {}
        self.derived = record.get("derivedSection") or {}
        self.nct_id = nct_id
        self.rs_id = study_id(nct_id)
        self.meta: dict = {"versionId": version_id}
        if last_updated:
            self.meta["lastUpdated"] = last_updated
        self.ids = IdAllocator()
        self._resources: dict[tuple[str, str], dict] = {}

    def module(self, name: str) -> dict:
        return self.protocol.get(name) or {}

    def add(self, resource: dict) -> dict:
        """Register a resource (first one wins on a repeated id) and return a reference to it."""
        key = (resource["resourceType"], resource["id"])
        if key not in self._resources:
            # resourceType, id, meta first; update() keeps the first two in place (the same values) and
            # appends the rest in C, where a comprehension dropping three keys cost a Python loop a resource.
            res = {"resourceType": key[0], "id": key[1], "meta": None}
            res.update(resource)
            res["meta"] = dict(self.meta)  # the study version's, whatever the mapper gave
            self._resources[key] = res
        return self.ref(*key)

    def existing(self, resource_type: str, resource_id: str) -> dict | None:
        """The resource registered under this id, to add to what a later mention of it says."""
        return self._resources.get((resource_type, resource_id))

    @staticmethod
    def ref(resource_type: str, resource_id: str, display: str | None = None) -> dict:
        r = {"reference": f"{resource_type}/{resource_id}", "type": resource_type}
        if display:
            r["display"] = display
        return r

    def resources(self) -> list[dict]:
        return list(self._resources.values())
