"""Organizations: sponsors, collaborators, investigators' affiliations.

One organisation named by many studies must be one resource, so the id hashes the normalised
name and the content is the name alone: per-study facts (agency class, role) live on the
study's associatedParty, otherwise the last study loaded would overwrite them for everyone.
"""

from __future__ import annotations

from .context import StudyContext
from .ids import organization_id


def organization(ctx: StudyContext, name: str | None) -> dict | None:
    if not name or not name.strip():
        return None
    name = name.strip()
    ref = ctx.add({"resourceType": "Organization", "id": organization_id(name), "active": True, "name": name})
    ref["display"] = name
    return ref
