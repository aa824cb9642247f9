"""Stable OMOP integer ids: a persistent map from natural key to id, ``meta.omop_id_map``.

Ids are allocated ``max + 1`` per target table in first-study, then natural-key order and never reused or
changed, so the same site, investigator, arm or fact keeps its id across reloads, versions
of a study and subsets of the registry. ``owner`` is the NCT id of a study-owned row (arms,
metadata facts) or NULL for rows shared across studies (locations, care sites, providers);
the mappings use it to replace exactly the rows of the studies they re-map.
"""

from __future__ import annotations

import duckdb

from schemas import drop_keys
from schemas.omop.spec import check_identifier, check_relation
from transforms.omop._db import sql_file


def ensure_id_map(con: duckdb.DuckDBPyConnection, id_map_schema: str = "meta") -> None:
    meta = check_identifier(id_map_schema)
    con.execute(sql_file("id_map_create.sql", meta=meta))
    # An id map an earlier version created with keys is rebuilt once (see id_map_create.sql).
    drop_keys(con, meta, "omop_id_map", lambda: con.execute(sql_file("id_map_create.sql", meta=meta)))


def assign_ids(con: duckdb.DuckDBPyConnection, id_map_schema: str, table_name: str, keys: str) -> None:
    """Allocate ids for the natural keys in relation ``keys`` (columns natural_key, owner, first_seen)
    not yet mapped.

    New ids are numbered by ``first_seen`` (the NCT id of the first study that has the key), then by
    key. Studies are staged in chunks of NCT id ranges, in order, so a shared key (a site, an
    investigator) is first seen in the same study whether the batch is mapped whole or in chunks of
    any size, and gets the same id: by key alone, each chunk numbered its own keys in key order."""
    check_identifier(table_name)
    con.execute(
        sql_file("id_map_assign.sql", meta=check_identifier(id_map_schema), keys=check_relation(keys)),
        {"table_name": table_name},
    )

