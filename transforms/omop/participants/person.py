"""DM -> ``person``.

Natural key: the participant's pseudonym (HMAC-SHA256 of USUBJID, ``pseudonym.py``), so
``person_source_value`` leads back to the site's records only for whoever holds the key.
Gender, race and ethnicity go through ``source_concepts.csv`` (PHUSE maps; unmapped -> 0 with the
source value kept). Birth is as precise as BRTHDTC gives it, else the consent year minus AGE.
care_site is the site's, found through the roster's natural key (``site.py``); location_id is empty:
it is the person's own address, which a delivery does not hold, not the site's (the site's location is
the care site's).
"""
from __future__ import annotations

from transforms.omop.participants._common import allocate, insert_spec, run_sql


def map_person(con, schema: str, meta: str, vocab: str) -> int:
    run_sql(con, "person.sql", part=0, meta=meta, vocab=vocab)
    allocate(con, meta, "person", "_pt_person_src")
    run_sql(con, "person.sql", part=1, meta=meta, vocab=vocab)
    return insert_spec(con, schema, "person", "_pt_person")
