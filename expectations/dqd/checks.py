"""OHDSI Data Quality Dashboard (v5.4 catalog) checks as plain DuckDB SQL.

The catalog CSVs of DataQualityDashboard are bundled in ``catalog/``; every check is generated
from them (which fields are required, keys, foreign keys, domains, plausible bounds and their
thresholds), with one SQL template per check type in ``sql/`` beside this file. No
great-expectations here: the gate wraps these results.

A check fails when the percentage of violating rows is above the catalog threshold (0 for
the fatal checks). Semantics follow the DQD SQL: concept id 0 is exempt from ``fkDomain``,
``fkClass`` and ``isStandardValidConcept``; NULLs are exempt from every check but ``isRequired``.

One deliberate deviation: the catalog declares ``cohort_definition.cohort_definition_id`` a
foreign key to ``cohort``, the reverse of the CDM (``cohort`` rows refer to their definition);
taken literally it fails every arm that has no participants yet. The engine checks the CDM
direction instead, ``cohort.cohort_definition_id`` into ``cohort_definition``.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import duckdb

from schemas.omop.spec import check_identifier, quote

CATALOG_DIR = Path(__file__).parent / "catalog"
SQL_DIR = Path(__file__).parent / "sql"

FATAL_CHECKS = frozenset({"cdmTable", "cdmField", "isRequired", "cdmDatatype", "isPrimaryKey", "isForeignKey"})
ALL_CHECKS = FATAL_CHECKS | {
    "fkDomain", "fkClass", "isStandardValidConcept", "plausibleValueLow", "plausibleValueHigh", "plausibleStartBeforeEnd",
}
VOCAB_TABLES = frozenset({
    "concept", "vocabulary", "domain", "concept_class", "concept_relationship", "relationship",
    "concept_synonym", "concept_ancestor", "drug_strength",
})
_INVERTED_FKS = {("cohort_definition", "cohort_definition_id"): ("cohort", "cohort_definition_id", "cohort_definition")}


@dataclass(frozen=True)
class CheckResult:
    check_name: str
    table: str
    field: str | None
    violated: int
    denominator: int
    pct: float
    threshold: float
    failed: bool
    severity: str
    examples: list[str] = field(default_factory=list)
    detail: str = ""


@lru_cache(maxsize=None)
def _catalog(name: str) -> list[dict[str, str]]:
    with (CATALOG_DIR / name).open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=None)
def _template(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def _severity() -> dict[str, str]:
    return {r["checkName"]: r["severity"] for r in _catalog("OMOP_CDMv5.4_Check_Descriptions.csv")}


def _threshold(value: str) -> float:
    return float(value) if value and value.strip() not in ("", "NA") else 0.0


def _bound(expr: str):
    """DQD bounds are SQL Server snippets: ``'19500101'``, ``DATEADD(dd,1,GETDATE())``, ``YEAR(GETDATE())+1``, numbers."""
    expr = expr.strip()
    today = dt.date.today()
    if m := re.fullmatch(r"'(\d{8})'", expr):
        return dt.datetime.strptime(m.group(1), "%Y%m%d").date()
    if re.fullmatch(r"DATEADD\(dd,\s*1,\s*GETDATE\(\)\)", expr, re.I):
        return today + dt.timedelta(days=1)
    if re.fullmatch(r"YEAR\(GETDATE\(\)\)\s*\+\s*1", expr, re.I):
        return today.year + 1
    return float(expr)


def _columns(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, dict[str, str]]:
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = ?", [schema]
    ).fetchall()
    out: dict[str, dict[str, str]] = {}
    for t, c, ty in rows:
        out.setdefault(t.lower(), {})[c.lower()] = ty
    return out


def _primary_keys() -> dict[str, str]:
    return {
        r["cdmTableName"].lower(): r["cdmFieldName"].lower()
        for r in _catalog("OMOP_CDMv5.4_Field_Level.csv")
        if r["isPrimaryKey"] == "Yes"
    }


def run_dqd(
    con: duckdb.DuckDBPyConnection, schema: str, checks: set[str] | None = None, vocab_schema: str | None = None
) -> list[CheckResult]:
    """Run the selected checks (default: all implemented) against ``schema``; one result per check instance.

    Field checks on a missing table or column are not run: ``cdmTable``/``cdmField`` report those.
    ``vocab_schema`` (default ``schema``) is where references to vocabulary tables are resolved,
    for a staging schema checked against the published vocabulary.
    """
    check_identifier(schema)
    vocab = check_identifier(vocab_schema or schema)
    selected = set(ALL_CHECKS if checks is None else checks)
    unknown = selected - ALL_CHECKS
    if unknown:
        raise ValueError(f"checks not implemented: {sorted(unknown)}")
    columns = _columns(con, schema)
    vocab_columns = _columns(con, vocab) if vocab != schema else columns

    def ref_columns(table: str) -> dict[str, str]:
        return (vocab_columns if table in VOCAB_TABLES else columns).get(table, {})
    pks = _primary_keys()
    severity = _severity()
    results: list[CheckResult] = []

    def run(name: str, table: str, fld: str | None, template: str, threshold: float,
            params: dict | None = None, detail: str = "", **extra: str) -> None:
        key = f"t.{quote(pks[table])}" if table in pks else f"t.{quote(fld)}"
        ref_schema = vocab if extra.get("fk_table") in VOCAB_TABLES else schema
        body = _template(template).format(schema=quote(schema), vocab=quote(vocab), ref_schema=quote(ref_schema),
                                          table=quote(table), field=quote(fld), key=key,
                                          **{k: quote(v) for k, v in extra.items()})
        sql = _template("check_wrapper.sql").format(violations=body, schema=quote(schema), table=quote(table))
        violated, denominator, examples = con.execute(sql, params or {}).fetchone()
        pct = 100.0 * violated / denominator if denominator else 0.0
        results.append(CheckResult(name, table, fld, violated, denominator, pct, threshold, pct > threshold,
                                   severity.get(name, ""), list(examples or []), detail))

    for row in _catalog("OMOP_CDMv5.4_Table_Level.csv"):
        table = row["cdmTableName"].lower()
        if "cdmTable" in selected:
            present = table in columns
            results.append(CheckResult("cdmTable", table, None, 0 if present else 1, 1, 0.0 if present else 100.0,
                                       0.0, not present, severity["cdmTable"]))

    for row in _catalog("OMOP_CDMv5.4_Field_Level.csv"):
        table, fld = row["cdmTableName"].lower(), row["cdmFieldName"].strip('"').lower()
        check_identifier(table)
        check_identifier(fld)
        present = fld in columns.get(table, {})
        if "cdmField" in selected and table in columns:
            results.append(CheckResult("cdmField", table, fld, 0 if present else 1, 1, 0.0 if present else 100.0,
                                       0.0, not present, severity["cdmField"]))
        if not present:
            continue
        if "isRequired" in selected and row["isRequired"] == "Yes":
            run("isRequired", table, fld, "field_is_not_nullable.sql", _threshold(row["isRequiredThreshold"]))
        if "cdmDatatype" in selected and row["cdmDatatype"].lower() == "integer":
            run("cdmDatatype", table, fld, "field_cdm_datatype.sql", _threshold(row["cdmDatatypeThreshold"]))
        if "isPrimaryKey" in selected and row["isPrimaryKey"] == "Yes":
            run("isPrimaryKey", table, fld, "field_is_primary_key.sql", _threshold(row["isPrimaryKeyThreshold"]))
        if "isForeignKey" in selected and row["isForeignKey"] == "Yes":
            fk_table, fk_field = row["fkTableName"].lower(), row["fkFieldName"].lower()
            detail = f"{table}.{fld} -> {fk_table}.{fk_field}"
            check_table, check_field = table, fld
            if (table, fld) in _INVERTED_FKS:
                check_table, check_field, fk_table = _INVERTED_FKS[(table, fld)]
                detail = f"{check_table}.{check_field} -> {fk_table}.{fk_field} (catalog direction inverted, see module doc)"
            if fk_field in ref_columns(fk_table) and check_field in columns.get(check_table, {}):
                run("isForeignKey", check_table, check_field, "is_foreign_key.sql",
                    _threshold(row["isForeignKeyThreshold"]), detail=detail, fk_table=fk_table, fk_field=fk_field)
        has_concept = bool(ref_columns("concept"))
        if "fkDomain" in selected and row["fkDomain"] and has_concept:
            run("fkDomain", table, fld, "field_fk_domain.sql", _threshold(row["fkDomainThreshold"]),
                {"expected": row["fkDomain"]}, detail=row["fkDomain"])
        if "fkClass" in selected and row["fkClass"] and has_concept:
            run("fkClass", table, fld, "field_fk_class.sql", _threshold(row["fkClassThreshold"]),
                {"expected": row["fkClass"]}, detail=row["fkClass"])
        if "isStandardValidConcept" in selected and row["isStandardValidConcept"] == "Yes" and has_concept:
            run("isStandardValidConcept", table, fld, "field_is_standard_valid_concept.sql",
                _threshold(row["isStandardValidConceptThreshold"]))
        if "plausibleValueLow" in selected and row["plausibleValueLow"]:
            run("plausibleValueLow", table, fld, "field_plausible_value_low.sql",
                _threshold(row["plausibleValueLowThreshold"]), {"bound": _bound(row["plausibleValueLow"])},
                detail=row["plausibleValueLow"])
        if "plausibleValueHigh" in selected and row["plausibleValueHigh"]:
            run("plausibleValueHigh", table, fld, "field_plausible_value_high.sql",
                _threshold(row["plausibleValueHighThreshold"]), {"bound": _bound(row["plausibleValueHigh"])},
                detail=row["plausibleValueHigh"])
        if "plausibleStartBeforeEnd" in selected and row["plausibleStartBeforeEnd"] == "Yes":
            end_field = row["plausibleStartBeforeEndFieldName"].lower()
            if end_field in columns[table]:
                run("plausibleStartBeforeEnd", table, fld, "field_plausible_start_before_end.sql",
                    _threshold(row["plausibleStartBeforeEndThreshold"]), detail=end_field, end_field=end_field)
    return results


def failures(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.failed]
