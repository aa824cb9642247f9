"""Publishing participant rows: clear the published sites first, then the lead's by-key merge.

``transforms.omop.publish.merge_stage`` replaces rows by primary key. For participant data that is not
enough: a record (or a participant) a superseding delivery no longer carries keeps its old primary
key in ``omop``, and ``cohort`` has no primary key at all, so a by-key merge would leave stale rows or
duplicate memberships. Call ``clear_published_sites`` inside the publish transaction, before
``merge_stage``: it deletes from ``target`` every participant row of each site that has rows in
``stage`` (or current rows in ``source_rows``), so the merge then writes each site whole.
"""
from __future__ import annotations

from schemas.omop.spec import check_identifier, check_relation, quote
from transforms.omop.participants._common import clear_sites


def clear_published_sites(con, stage: str = "stage_omop", target: str = "omop", id_map_schema: str = "meta",
                          source_rows: str | None = "raw.sdtm_row_current") -> int:
    """Delete the published rows of the sites being published; returns how many sites."""
    s, m = quote(stage), quote(id_map_schema)
    check_identifier(target)
    owners = (f"SELECT owner FROM {m}.omop_id_map WHERE table_name = 'person' "
              f"AND id IN (SELECT person_id FROM {s}.person)")
    if source_rows:
        owners += f" UNION SELECT DISTINCT nct_id || '|site:' || site_id FROM {check_relation(source_rows)}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _pt_publish_owner AS {owners}")
    try:
        clear_sites(con, target, id_map_schema, "_pt_publish_owner")
        return con.execute("SELECT count(*) FROM _pt_publish_owner").fetchone()[0]
    finally:
        con.execute("DROP TABLE IF EXISTS temp.main._pt_publish_owner")
