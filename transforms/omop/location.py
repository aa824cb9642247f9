"""Trial sites to ``location``: one row per distinct site (natural key in ``care_site.py``).

``location.state`` is ``varchar(2)`` in the CDM, so US states are stored as their USPS code and
any other state or province only in ``location_source_value`` ("city, state, zip, country"),
which keeps the full text. Attributes come from the first record (by NCT id) that has them.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from schemas.omop.spec import check_identifier
from transforms.omop._db import insert_from, sql_file
from transforms.omop.id_map import assign_ids

US_STATES_CSV = Path(__file__).parent / "us_states.csv"


def map_locations(con: duckdb.DuckDBPyConnection, schema: str, id_map_schema: str, vocab_schema: str | None = None) -> int:
    """Upsert the locations of the sites in ``_trial_site``; returns rows written."""
    check_identifier(schema)
    con.execute("CREATE OR REPLACE TEMP TABLE _omop_site_keys AS "
                "SELECT site_key AS natural_key, CAST(NULL AS VARCHAR) AS owner, min(nct_id) AS first_seen "
                "FROM _trial_site GROUP BY site_key")
    assign_ids(con, id_map_schema, "location", "_omop_site_keys")
    con.execute(sql_file("location.sql", vocab=vocab_schema or schema, meta=id_map_schema), {"us_states": str(US_STATES_CSV)})
    con.execute(f"DELETE FROM {schema}.location WHERE location_id IN (SELECT location_id FROM _omop_location)")
    return insert_from(con, schema, "location", "_omop_location")
