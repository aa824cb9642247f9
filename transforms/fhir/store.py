"""FHIR resources in DuckDB: one JSON table per schema plus flat views.

The lead publishes by building `stage_fhir` and moving rows to `fhir`, so the schema name is a
parameter. Identifiers cannot be bound as SQL parameters, so a schema name is only ever
substituted into SQL after it passes `checked_schema` (a fixed pattern of lower-case
identifier characters); every value goes in as data, never as SQL text.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

import orjson
import pandas as pd

from schemas import drop_keys
from transforms.omop._db import transaction

from .terminology import SCHEMA_DIR

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_NCT_PREFIX = re.compile(r"^(nct\d{8})(?:-|$)")
# Participants' resources. Their ids are pseudonyms and name no study, so the writer gives their study
# (`write_resources(..., nct_id=)`); a registry version replacing its study's resources leaves them be:
# participants come and go with their deliveries (participant_publish.drop_unstaged_participants).
PARTICIPANT_TYPES = ("Patient", "ResearchSubject")
NOT_PARTICIPANT = "resource_type NOT IN (" + ", ".join(f"'{t}'" for t in PARTICIPANT_TYPES) + ")"
_DROP_STUDIES = """
DELETE FROM "{schema}".resource
WHERE nct_id IN (SELECT DISTINCT nct_id FROM {batch} WHERE nct_id IS NOT NULL) AND """ + NOT_PARTICIPANT
# Replace by key as delete + insert, not INSERT OR REPLACE: that needs the PRIMARY KEY, which a
# staging schema does not have (see create_fhir_schema).
_DROP_KEYS = """
DELETE FROM "{schema}".resource
WHERE (resource_type, id) IN (SELECT resource_type, id FROM {batch})
"""
# A stage writing new studies slice by slice (see append_new_studies) sets shared resources aside
# with the slice's number; they are folded once at the end.
_PENDING = """
CREATE TABLE IF NOT EXISTS "{schema}".shared_pending (
    seq BIGINT NOT NULL, resource_type VARCHAR NOT NULL, id VARCHAR NOT NULL, version_id VARCHAR NOT NULL,
    last_updated TIMESTAMPTZ, resource JSON NOT NULL)
"""
# A frame of `resource_rows` as the resource table's columns; append_new_studies projects relations
# with these (see there), _write selects from a registered frame.
_AS_RESOURCE = "resource_type, id, version_id, CAST(last_updated AS TIMESTAMPTZ), nct_id, CAST(resource AS JSON)"
_AS_PENDING = "seq, resource_type, id, version_id, CAST(last_updated AS TIMESTAMPTZ), CAST(resource AS JSON)"
_INSERT = 'INSERT INTO "{schema}".resource SELECT ' + _AS_RESOURCE + " FROM {batch}"


def checked_schema(schema: str) -> str:
    if not isinstance(schema, str) or not _SCHEMA_RE.match(schema):
        raise ValueError(f"schema name {schema!r} must match {_SCHEMA_RE.pattern}")
    return schema


def _sql(file_name: str, schema: str) -> str:
    text = (SCHEMA_DIR / file_name).read_text(encoding="utf-8")
    return text.replace("{schema}", checked_schema(schema))


def create_fhir_schema(con, schema: str) -> None:
    """Create (idempotently) the schema, its resource table and its views.

    The table has no PRIMARY KEY: its writers keep (resource_type, id) unique (write_*, the stage's
    append_new_studies and fold_shared, and the publish, which deletes every key it inserts and checks
    the staged keys first). DuckDB's upserts into a keyed staging table took 43 s of the FHIR stage at
    100,000 studies and grew faster than the batch, and the published key's index did not fit DuckDB's
    512 MB cap when the 600,000-study registry was inserted (7.2 M resources: out of memory; 19 s
    without it). A table an earlier version keyed is rebuilt once (`drop_keys`)."""
    con.execute(_sql("resource.sql", schema))
    drop_keys(con, checked_schema(schema), "resource", lambda: con.execute(_sql("resource.sql", schema)))
    con.execute(_sql("views.sql", schema))


def owning_nct_id(resource: dict) -> str | None:
    """The study a resource belongs to, from its id; None for resources shared across studies."""
    m = _NCT_PREFIX.match(resource.get("id", ""))
    return m.group(1).upper() if m else None


_COLUMNS = ["resource_type", "id", "version_id", "last_updated", "nct_id", "resource"]


def resource_rows(emitted: Iterable[tuple[str, dict]]) -> pd.DataFrame:
    """(emitting study, resource) pairs as table rows with an `emitted_by` column, not yet de-duplicated:
    a shared Organization appears once per study that emitted it, so dropping a study keeps the others'."""
    return resource_frame([resource_row(by, res) for by, res in emitted])


def resource_row(by: str | None, res: dict) -> tuple:
    """One resource as a table row (serialized), so the caller can drop the resource itself."""
    meta = res.get("meta") or {}
    return (res["resourceType"], res["id"], str(meta.get("versionId", "1")), meta.get("lastUpdated"),
            owning_nct_id(res), orjson.dumps(res).decode(), by)


def resource_frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=_COLUMNS + ["emitted_by"])


def _frame(resources: Iterable[dict]) -> pd.DataFrame:
    return _dedupe(resource_rows((None, r) for r in resources))


def _dedupe(frame: pd.DataFrame) -> pd.DataFrame:
    # One row per key, the first emitted: a shared Organization or Location may come from many studies,
    # and the first by NCT id describes it, as OMOP's care site and provider (transforms/omop/README.md).
    return frame.drop_duplicates(["resource_type", "id"], keep="first")[_COLUMNS]


def write_resources(con, schema: str, resources: Iterable[dict], *, replace_studies: bool = True,
                    nct_id: str | None = None) -> int:
    """Replace resources by (resource_type, id); returns the number of rows written. A key given twice
    is written once, as first given; a key already in the table is replaced (a newer batch).

    With `replace_studies` (the default) the batch must hold whole studies, as `map_study`
    returns them: rows of those studies that the batch no longer contains (a site or an
    intervention dropped by a new registry version) are deleted first, so no stale resource
    outlives its version. Shared resources (Organization, Location) are only ever upserted.
    The writes are one transaction, or part of the caller's.

    `nct_id` is the study of resources whose ids do not name one (a study's participants): without it
    they were filed as shared, so a filter on nct_id missed them and the export put them in `shared-xx`.
    """
    frame = _frame(resources)
    if nct_id is not None:
        frame = frame.assign(nct_id=frame["nct_id"].fillna(nct_id))
    return _write(con, schema, frame, replace_studies)


def append_new_studies(con, schema: str, rows: pd.DataFrame, seq: int, pending_keys: set[str] | None = None) -> int:
    """Write a slice of `resource_rows` of studies not in the table yet (the FHIR stage writes each
    study once); `fold_shared` must follow once the last slice is written. Returns rows written.

    A study's own resources have ids that name it (see owning_nct_id), so they go straight in. Shared
    ones (Organization, Location) are appended to `<schema>.shared_pending` with the slice's number
    `seq` (increasing): replacing them by key on every slice scanned every staged row each time,
    ~45 ms a slice at 1.5 M staged resources and growing with the batch, so quadratic in it.

    `pending_keys`, kept by the caller across its slices, holds the 'Type/id' of every shared resource
    already set aside: the fold keeps the first written of a key, so a later copy (a sponsor or a site
    that many studies list) is not written at all. The caller drops held studies' rows before calling,
    so a key is only recorded once a study that stays has written it."""
    sql_schema = checked_schema(schema)
    frame = _dedupe(rows)
    shared = frame["nct_id"].isna()
    own, pending = frame[~shared], frame[shared]
    if pending_keys is not None and not pending.empty:
        keys = pending["resource_type"] + "/" + pending["id"]
        new = ~keys.isin(pending_keys)
        pending = pending[new]
        pending_keys.update(keys[new])
    # Inserted through relations, not a registered view: the FHIR stage is one transaction, and
    # DuckDB keeps a view dropped inside a transaction, with the DataFrame it holds, until the
    # commit (the 100,000-study stage's run process peaked at 2.6 GB that way, 1.1 GB this way).
    # Two frames, not one scanned twice with a filter: each scan converts every row's JSON text.
    with transaction(con):
        if not own.empty:
            con.from_df(own).project(_AS_RESOURCE).insert_into(f'"{sql_schema}".resource')
        if not pending.empty:
            con.execute(_PENDING.format(schema=sql_schema))
            con.from_df(pending.assign(seq=seq)).project(_AS_PENDING).insert_into(f'"{sql_schema}".shared_pending')
    return len(own) + len(pending)


def fold_shared(con, schema: str) -> None:
    """Move the shared resources `append_new_studies` set aside into the table, the first written per
    key (slices are written in NCT id order): one pass over them, whatever the number of slices."""
    sql_schema = checked_schema(schema)
    if con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = 'shared_pending'",
                   [sql_schema]).fetchone()[0]:
        with transaction(con):
            con.execute(_sql("fold_shared.sql", sql_schema))


def _write(con, schema: str, frame: pd.DataFrame, replace_studies: bool) -> int:
    sql_schema = checked_schema(schema)
    if frame.empty:
        return 0
    batch = "fhir_batch_" + uuid.uuid4().hex
    con.register(batch, frame)
    try:
        with transaction(con):
            if replace_studies:
                con.execute(_DROP_STUDIES.format(schema=sql_schema, batch=batch))
            con.execute(_DROP_KEYS.format(schema=sql_schema, batch=batch))
            con.execute(_INSERT.format(schema=sql_schema, batch=batch))
    finally:
        con.unregister(batch)
    return len(frame)
