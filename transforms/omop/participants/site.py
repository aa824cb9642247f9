"""Site rosters (sites.csv) -> ``location``, ``care_site`` and ``provider`` (principal investigator).

The roster rows are shaped like the registry extract and run through the registry's own mappings
(``transforms/omop/location.py``, ``care_site.py``, ``provider.py``), so the natural keys are the
same by construction: the registry's "Mayo Clinic in Rochester" and site 001's roster row are one
care_site, and the PI one provider (``site|<name>|<site key>``), whichever is mapped first.
"""
from __future__ import annotations

from transforms.omop.care_site import map_care_sites
from transforms.omop.location import map_locations
from transforms.omop.participants._common import run_sql
from transforms.omop.provider import map_providers


def map_sites(con, schema: str, meta: str, vocab: str, rosters: str) -> dict[str, int]:
    run_sql(con, "site_extract.sql", rosters=rosters, meta=meta)
    if not con.execute("SELECT count(*) FROM _trial_site").fetchone()[0]:
        return {"location": 0, "care_site": 0, "provider": 0}
    return {"location": map_locations(con, schema, meta, vocab),
            "care_site": map_care_sites(con, schema, meta),
            "provider": map_providers(con, schema, meta)}
