"""Registry conditions and interventions to standard concepts, decisions kept in ``source_to_concept_map``.

Source terms (``source_vocabulary_id`` / ``source_code``):

* ``CTGOV_CONDITION`` / ``CTGOV_INTERVENTION``: free-text names, normalised (lower case,
  accents stripped, runs of other characters to one space); names over 50 characters keep
  41 characters, ``~`` and 8 hex of their md5 so that ``source_code`` fits ``varchar(50)``;
* ``CTGOV_COND_MESH`` / ``CTGOV_INTV_MESH``: the MeSH ids of ``derivedSection``'s browse modules.

Rules, first that yields a standard valid concept wins (lowest concept_id on ties):

1. ``mesh_maps_to``: the term's MeSH id (its own, or for a free-text name the study's MeSH
   entry of the same name) is a concept of vocabulary MeSH with a valid ``Maps to``;
2. ``name_exact``: case-insensitive concept_name of a standard concept in the term's domain
   (conditions: Condition; interventions by type: DRUG/BIOLOGICAL/DIETARY_SUPPLEMENT Drug,
   DEVICE Device, PROCEDURE/RADIATION Procedure, DIAGNOSTIC_TEST Measurement or Procedure;
   MeSH interventions: Drug, Device or Procedure);
3. ``synonym_exact``: the same through ``concept_synonym``;
4. ``curated``: ``curated_source_to_concept.csv``, reviewed decisions with their reason;
5. ``unmapped``: concept 0, the term kept as source value.

``source_code_description`` is ``rule=<rule>; <original term>``; ``coverage_report`` reads it.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from schemas.omop.spec import check_identifier, quote
from transforms.omop._db import insert_from, sql_file

CURATED_CSV = Path(__file__).parent / "curated_source_to_concept.csv"
SOURCE_VOCABULARIES = ("CTGOV_CONDITION", "CTGOV_INTERVENTION", "CTGOV_COND_MESH", "CTGOV_INTV_MESH")


def map_concepts(con: duckdb.DuckDBPyConnection, schema: str, vocab_schema: str | None = None) -> int:
    """Decide a concept for every term of the extract and replace their ``source_to_concept_map`` rows.

    Leaves ``_trial_concept_choice`` (source_vocabulary_id, source_code, concept_id, rule) for
    the metadata mapping. Returns rows written.
    """
    check_identifier(schema)
    con.execute(sql_file("concept_terms.sql"))
    con.execute(sql_file("concept_mapping.sql", vocab=vocab_schema or schema), {"curated": str(CURATED_CSV)})
    con.execute(sql_file("concept_stcm_stage.sql", vocab=vocab_schema or schema))
    con.execute(
        f"DELETE FROM {quote(schema)}.source_to_concept_map s WHERE EXISTS ("
        "SELECT 1 FROM _omop_stcm n WHERE n.source_vocabulary_id = s.source_vocabulary_id "
        "AND n.source_code = s.source_code)"
    )
    return insert_from(con, schema, "source_to_concept_map", "_omop_stcm")


def coverage_report(con: duckdb.DuckDBPyConnection, schema: str = "omop") -> list[dict]:
    """Share of registry terms mapped, per source vocabulary and rule, from ``source_to_concept_map``."""
    check_identifier(schema)
    rows = con.execute(sql_file("concept_coverage.sql", schema=schema), {"vocabs": list(SOURCE_VOCABULARIES)}).fetchall()
    return [
        {"source_vocabulary_id": v, "rule": r, "terms": n, "pct_of_vocabulary": pct, "mapped": mapped}
        for v, r, n, pct, mapped in rows
    ]
