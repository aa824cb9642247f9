"""Moving a gated OMOP batch from the staging schema into the published one (inside the caller's
publish transaction).

Shared rows (locations, care sites, providers, and from site data persons and their events) are
replaced by primary key; study-owned rows (arms, trial facts) of the batch's studies are replaced
whole, found through `meta.omop_id_map.owner`, so an arm a new registry version dropped goes too;
concept decisions are replaced by source code; `cdm_source` describes the warehouse and is replaced,
keeping the later source release date, which `cover_events` then brings up to the newest event.
"""
from __future__ import annotations

from schemas.omop.spec import cdm_tables, check_relation, quote

# Reference data loaded by transforms.omop.vocabulary, never staged per batch.
VOCABULARY = frozenset({"concept", "vocabulary", "domain", "concept_class", "concept_relationship", "relationship",
                        "concept_synonym", "concept_ancestor", "drug_strength"})
OWNED = {"cohort_definition": "cohort_definition_id", "metadata": "metadata_id"}
REPLACED_WHOLE = ("cdm_source",)
# `source_release_date` is the newest lastUpdatePostDate mapped: a batch of one old study's update
# must not move the warehouse's back.
_KEEP_LATEST_RELEASE = (
    "UPDATE {s}.cdm_source SET source_release_date = "
    "greatest(source_release_date, (SELECT max(source_release_date) FROM {p}.cdm_source))"
)
# ... nor end before the newest event published: the CDM's "the latest event date in the source is on
# the source_release_date". Participants' events (every one inside its observation period) come from
# site deliveries cut off after the registry dates a batch knows of.
_COVER_EVENTS = (
    "UPDATE {p}.cdm_source SET source_release_date = "
    "greatest(source_release_date, (SELECT max(observation_period_end_date) FROM {p}.observation_period))"
)
_STCM_KEEP_LEAST = (
    "DELETE FROM {p}.source_to_concept_map AS o USING {s}.source_to_concept_map AS n "
    "WHERE o.source_code = n.source_code AND o.source_vocabulary_id = n.source_vocabulary_id "
    "AND substr(n.source_code_description, strpos(n.source_code_description, '; ') + 2) "
    "< substr(o.source_code_description, strpos(o.source_code_description, '; ') + 2)"
)


def primary_keys() -> dict[str, str]:
    return {t.name: t.primary_key[0] for t in cdm_tables().values() if len(t.primary_key) == 1}


def staged_tables(con, stage: str) -> list[str]:
    """Non-empty CDM tables of the staging schema (vocabulary tables are never staged)."""
    out = []
    for t in cdm_tables().values():
        if t.name in VOCABULARY:
            continue
        if con.execute(f"SELECT count(*) FROM {quote(stage)}.{quote(t.name)}").fetchone()[0]:
            out.append(t.name)
    return out


def merge_stage(con, stage: str, target: str, batch: str, id_map_schema: str = "meta",
                keep_shared: bool = False) -> dict[str, int]:
    """Merge every non-empty staged table; `batch` is a relation with the batch's nct_id column.

    A shared row (same primary key) replaces the target's, the newer batch being the better
    description; `keep_shared` keeps the target's instead, for folding chunks of one batch in NCT id
    order, where the batch's own rule is that the first study describing a site or person wins.
    """
    s, p, m = quote(stage), quote(target), quote(id_map_schema)
    check_relation(batch)
    pks = primary_keys()
    merged: dict[str, int] = {}
    for name in staged_tables(con, stage):
        t = quote(name)
        if name in OWNED:
            con.execute(f"DELETE FROM {p}.{t} WHERE {quote(OWNED[name])} IN (SELECT id FROM {m}.omop_id_map "
                        f"WHERE table_name = ? AND owner IN (SELECT nct_id FROM {batch}))", [name])
        # A shared row's key: concept decisions by source code, the rest by primary key.
        key = "(source_code, source_vocabulary_id)" if name == "source_to_concept_map" else (
            quote(pks[name]) if name in pks else None)
        only_new = ""
        if name in REPLACED_WHOLE:
            if name == "cdm_source":  # the batch's newest study date; the warehouse's may be newer
                con.execute(_KEEP_LATEST_RELEASE.format(p=p, s=s))
            con.execute(f"DELETE FROM {p}.{t}")
        elif key and keep_shared and name not in OWNED:
            if name == "source_to_concept_map":
                # A batch decides a source code from its least spelling (min(source_name), which the
                # description ends with after "rule=...; "): the chunk holding the lesser one wins.
                con.execute(_STCM_KEEP_LEAST.format(p=p, s=s))
            only_new = f" WHERE {key} NOT IN (SELECT {key} FROM {p}.{t})"
        elif key:
            con.execute(f"DELETE FROM {p}.{t} WHERE {key} IN (SELECT {key} FROM {s}.{t})")
        merged[f"omop.{name}"] = con.execute(f"INSERT INTO {p}.{t} SELECT * FROM {s}.{t}{only_new}").fetchone()[0]
    return merged



def cover_events(con, target: str) -> None:
    """After a publish's merges: `source_release_date` no earlier than the newest published event."""
    con.execute(_COVER_EVENTS.format(p=quote(target)))
