"""Publishing participants' FHIR resources: what a study's current deliveries no longer hold goes.

Patient and ResearchSubject ids name no study (they are pseudonyms), and the publish's by-study
replacement leaves them be (a registry version does not replace its participants). Without this, a
participant a newer delivery left out, or one the gate now holds, kept its Patient and ResearchSubject
in `fhir.resource` and the export, while OMOP dropped its person. A ResearchSubject names its study and
its Patient, which is how they are found here.
"""
from __future__ import annotations

from transforms.fhir.export import PART_SQL
from transforms.sites.fingerprint import ensure_tables

_STALE = """
CREATE OR REPLACE TEMP TABLE _stale_participants AS
WITH subject AS (
    SELECT id, json_extract_string(resource, '$.subject.reference') AS patient
    FROM fhir.resource
    WHERE resource_type = 'ResearchSubject'
      AND upper(split_part(json_extract_string(resource, '$.study.reference'), '/', 2))
          IN (SELECT nct_id FROM stage.site_scope WHERE run_id = ?)
), published AS (
    SELECT 'ResearchSubject' AS resource_type, id FROM subject
    UNION SELECT 'Patient', split_part(patient, '/', 2) FROM subject WHERE starts_with(patient, 'Patient/')
)
SELECT r.resource_type, r.id, r.nct_id
FROM fhir.resource r JOIN published p USING (resource_type, id)
WHERE (r.resource_type, r.id) NOT IN (SELECT resource_type, id FROM stage_fhir.resource)
"""


def drop_unstaged_participants(con, run_id: str) -> int:
    """Inside the publish transaction, before the staged rows go in: delete the published Patients and
    ResearchSubjects of the studies this run staged participants for (stage.site_scope) that it did
    not stage again, recording their export parts as pending. Returns resources deleted."""
    ensure_tables(con)
    con.execute(_STALE, [run_id])
    n = con.execute("SELECT count(*) FROM _stale_participants").fetchone()[0]
    if n:
        con.execute(f"INSERT INTO meta.fhir_export_pending SELECT DISTINCT resource_type, {PART_SQL}, ? "
                    "FROM _stale_participants", [run_id])
        # their studies too: the export splices a touched NCT id part by the studies it lists
        con.execute("INSERT INTO meta.fhir_export_pending_study SELECT DISTINCT nct_id, ? FROM _stale_participants "
                    "WHERE nct_id IS NOT NULL", [run_id])
        con.execute("DELETE FROM fhir.resource WHERE (resource_type, id) IN "
                    "(SELECT resource_type, id FROM _stale_participants)")
    con.execute("DROP TABLE _stale_participants")
    return n
