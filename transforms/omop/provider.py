"""Investigators to ``provider``: overall officials and named site contacts.

Natural keys (normalised as site keys are):

* site contact: ``site|<name>|<site_key>``, linked to that site's care site, so a PI who runs
  the same hospital's arm of many trials is one provider;
* overall official: ``official|<name>|<affiliation>``, linked to a care site when the study has
  a site whose normalised facility equals the affiliation or, failing that, when the study has
  exactly one site (the official of a single-site trial works there).

The same person as official and site contact stays two rows: without an identifier (NPI is
not in the registry) merging by name alone would join different people of the same name.
``specialty_source_value`` keeps the registry role (PRINCIPAL_INVESTIGATOR, CONTACT, ...).
"""

from __future__ import annotations

import duckdb

from schemas.omop.spec import check_identifier
from transforms.omop._db import insert_from, sql_file
from transforms.omop.id_map import assign_ids


def map_providers(con: duckdb.DuckDBPyConnection, schema: str, id_map_schema: str) -> int:
    """Upsert providers for the studies in the extract (after ``map_care_sites``); returns rows written."""
    check_identifier(schema)
    con.execute(sql_file("provider_stage.sql"))
    con.execute("CREATE OR REPLACE TEMP TABLE _omop_provider_keys AS "
                "SELECT natural_key, CAST(NULL AS VARCHAR) AS owner, first_seen FROM _trial_provider")
    assign_ids(con, id_map_schema, "provider", "_omop_provider_keys")
    con.execute(sql_file("provider.sql", meta=id_map_schema))
    con.execute(f"DELETE FROM {schema}.provider WHERE provider_id IN (SELECT provider_id FROM _omop_provider)")
    return insert_from(con, schema, "provider", "_omop_provider")
