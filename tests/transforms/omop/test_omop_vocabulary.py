"""Vocabulary loading: the bundled demo (subset + supplement) and the Athena download format."""

from __future__ import annotations

import csv

import duckdb
import pytest

from transforms.omop.vocabulary import DEMO_DIR, SUPPLEMENT_DIR, VOCAB_TABLES, load_vocabulary, vocabulary_version


@pytest.fixture
def con():
    con = duckdb.connect()
    yield con
    con.close()


def test_demo_vocabulary_loads_with_supplement(con):
    counts = load_vocabulary(con, "omop")
    assert set(counts) == set(VOCAB_TABLES)
    assert counts["concept"] > 2300
    rows = dict(con.execute(
        "SELECT concept_id, concept_name FROM omop.concept WHERE concept_id IN (0, 8507, 8532, 32809, 4152280)"
    ).fetchall())
    assert rows == {
        0: "No matching concept",
        8507: "MALE",
        8532: "FEMALE",
        32809: "Case Report Form",
        4152280: "Major depressive disorder",
    }
    assert vocabulary_version(con, "omop") == "v5.0 09-APR-22*"
    # ISO dates of the demo parse, and empty standard_concept is NULL, not ''
    assert con.execute("SELECT count(*) FROM omop.concept WHERE standard_concept = ''").fetchone()[0] == 0
    assert con.execute("SELECT min(valid_start_date) FROM omop.concept").fetchone()[0].year >= 1970


def test_reload_replaces_instead_of_duplicating(con):
    first = load_vocabulary(con, "omop")
    assert load_vocabulary(con, "omop") == first


def test_supplement_ids_have_evidence():
    """Every supplement concept is in the verified key concept list (or is concept 0) and names its source."""
    with (SUPPLEMENT_DIR / "key_concepts_evidence.csv").open(encoding="utf-8") as fh:
        verified = {int(r["concept_id"]) for r in csv.DictReader(fh)}
    with (DEMO_DIR / "CONCEPT.csv").open(encoding="utf-8") as fh:
        subset = {int(r["concept_id"]) for r in csv.DictReader(fh)}
    with (SUPPLEMENT_DIR / "CONCEPT.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        assert r["source"].strip(), r
        cid = int(r["concept_id"])
        assert cid == 0 or cid in verified, cid
        assert cid not in subset, cid
    for name in ("DOMAIN.csv", "VOCABULARY.csv", "CONCEPT_CLASS.csv", "RELATIONSHIP.csv"):
        with (SUPPLEMENT_DIR / name).open(encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                assert r["source"].strip()
                assert all(r[k] == "0" for k in r if k.endswith("_concept_id")), r


def _write_tsv(path, header, rows):
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("\t".join(header) + "\n")
        for row in rows:
            fh.write("\t".join(row) + "\n")


@pytest.fixture
def athena_dir(tmp_path):
    """A tiny Athena-format folder: tab separated, YYYYMMDD dates, a stray quote in a name."""
    _write_tsv(tmp_path / "CONCEPT.csv",
               ["concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id", "standard_concept",
                "concept_code", "valid_start_date", "valid_end_date", "invalid_reason"],
               [["4152280", "Major depressive disorder", "Condition", "SNOMED", "Clinical Finding", "S", "370143000",
                 "20020731", "20991231", ""],
                ["40316773", 'Prediabetes "borderline', "Condition", "SNOMED", "Clinical Finding", "", "15777000",
                 "19700101", "20020131", "U"],
                ["0", "No matching concept", "Metadata", "None", "Undefined", "", "No matching concept",
                 "19700101", "20991231", ""]])
    _write_tsv(tmp_path / "VOCABULARY.csv",
               ["vocabulary_id", "vocabulary_name", "vocabulary_reference", "vocabulary_version", "vocabulary_concept_id"],
               [["None", "OMOP Standardized Vocabularies", "OMOP generated", "v5.0 30-AUG-24", "44819096"],
                ["SNOMED", "Systematic Nomenclature of Medicine", "SNOMED", "2024-03-01", "44819097"]])
    _write_tsv(tmp_path / "CONCEPT_RELATIONSHIP.csv",
               ["concept_id_1", "concept_id_2", "relationship_id", "valid_start_date", "valid_end_date", "invalid_reason"],
               [["40316773", "4152280", "Maps to", "20020131", "20991231", ""],
                ["4152280", "40316773", "Mapped from", "20020131", "20991231", ""]])
    _write_tsv(tmp_path / "CONCEPT_SYNONYM.csv", ["concept_id", "concept_synonym_name", "language_concept_id"],
               [["4152280", "MDD - major depressive disorder", "4180186"]])
    return tmp_path


def test_athena_format_loads(con, athena_dir):
    counts = load_vocabulary(con, "omop", athena_dir)
    assert counts["concept"] == 3
    assert counts["concept_relationship"] == 2
    assert counts["concept_synonym"] == 1
    assert counts["drug_strength"] == 0  # absent file: empty table
    row = con.execute(
        "SELECT concept_name, standard_concept, valid_start_date, invalid_reason FROM omop.concept WHERE concept_id = 40316773"
    ).fetchone()
    assert row[0] == 'Prediabetes "borderline'
    assert row[1] is None
    assert str(row[2]) == "1970-01-01"
    assert row[3] == "U"
    assert vocabulary_version(con, "omop") == "v5.0 30-AUG-24"


def test_athena_folder_without_concept_fails(con, tmp_path):
    with pytest.raises(FileNotFoundError):
        load_vocabulary(con, "omop", tmp_path)


def test_bad_date_fails_loudly_and_keeps_previous_release(con, athena_dir):
    load_vocabulary(con, "omop")
    before = con.execute("SELECT count(*) FROM omop.concept").fetchone()[0]
    text = (athena_dir / "CONCEPT.csv").read_text().replace("20020731", "2002-07-31")
    (athena_dir / "CONCEPT.csv").write_text(text)
    with pytest.raises(duckdb.Error):
        load_vocabulary(con, "omop", athena_dir)
    assert con.execute("SELECT count(*) FROM omop.concept").fetchone()[0] == before


def test_athena_header_in_another_order_is_refused(con, athena_dir):
    path = athena_dir / "CONCEPT_SYNONYM.csv"
    path.write_text("concept_synonym_name\tconcept_id\tlanguage_concept_id\nMDD\t4152280\t4180186\n")
    with pytest.raises(ValueError, match="column order"):
        load_vocabulary(con, "omop", athena_dir)
