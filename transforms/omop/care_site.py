"""Trial sites to ``care_site``, de-duplicated across studies.

Natural key (``_trial_site.site_key``, built in ``sql/trial_extract.sql``): facility, city,
state and country, each lower-cased, accent-stripped and reduced to letters and digits, joined
by ``|``. So "Mayo Clinic in Rochester, Rochester, Minnesota, United States" is one care site
whichever study lists it, while a same-named facility in another city is another. The zip is
left out on purpose: studies disagree on it for the same hospital (Loyola's 60153 and 60153-3328, Mayo's
55905 and none). Except where a study lists one key at different zips (no zip counting as one):
AstraZeneca names every site of NCT03549754 "Research Site", four of them in Almaty, so there the zip
joins the key (``|zip:<zip>``) and the study's own listing tells them apart, as FHIR's Locations do. A
roster's site takes such a key when its own study's registry listing made it (``meta.site_zip_key``,
participants/sql/site_extract.sql), so site 001 and the registry's listing of it stay one care site. The cost: a study that lists one hospital at
two spellings of its zip (404 and 404328) makes two, and a study whose new version adds a second
"Research Site" in a city re-keys the first (its old care site stays, as a site a study drops does).
A site without a facility
name cannot be recognised across studies and is keyed within its study (``study:<nct>|...``).
Each care site has the location with the same key.
"""

from __future__ import annotations

import duckdb

from schemas.omop.spec import check_identifier
from transforms.omop._db import insert_from, sql_file
from transforms.omop.id_map import assign_ids


def map_care_sites(con: duckdb.DuckDBPyConnection, schema: str, id_map_schema: str) -> int:
    """Upsert care sites for ``_trial_site`` (after ``map_locations``); returns rows written."""
    check_identifier(schema)
    assign_ids(con, id_map_schema, "care_site", "_omop_site_keys")
    con.execute(sql_file("care_site.sql", meta=id_map_schema))
    con.execute(f"DELETE FROM {schema}.care_site WHERE care_site_id IN (SELECT care_site_id FROM _omop_care_site)")
    return insert_from(con, schema, "care_site", "_omop_care_site")
