"""Suite `omop_dqd`: great-expectations expectations generated from the OHDSI Data Quality Dashboard
v5.4 field catalog (expectations/dqd/catalog), with DQD's own thresholds (`mostly` = 1 - threshold%).

Generated per staged table that has rows: isRequired, isPrimaryKey, isForeignKey (the referenced keys
staged or published), fkDomain and isStandardValidConcept (against the vocabulary; concept 0 exempt,
as in DQD), plausibleValueLow/High and plausibleStartBeforeEnd, plus the table's column set against
the spec (cdmField, schema drift). Value sets of the key and concept rules are computed in SQL from the
values present, so they stay small whatever the size of the vocabulary. cdmTable and cdmDatatype are
enforced by the typed DDL of the staging schema and checked by the SQL engine in expectations/dqd.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pandas as pd

from expectations.dqd.checks import _INVERTED_FKS, VOCAB_TABLES, _bound, _catalog, _threshold
from expectations.runtime import Rule
from schemas.omop.spec import quote

SUITE = "omop_dqd"


def _mostly(threshold: str) -> float:
    return max(0.0, 1.0 - _threshold(threshold) / 100.0)


def _present(con, sql: str, params=None) -> list:
    return [r[0] for r in con.execute(sql, params or []).fetchall()]


# Rows of one staged table validated at a time: memory stays flat in the batch (the whole metadata
# table of 100,000 studies is 1.7 M rows, ~1 GB with great-expectations' copies); GX's fixed cost is
# paid once more per extra slice of a big table only.
SLICE_ROWS = 500_000


def staged_slices(con, stage: str, tables: list[str], primary_keys: dict[str, str],
                  rows: int = SLICE_ROWS) -> Iterator[tuple[str, pd.DataFrame]]:
    """(table, frame) for every staged table, big tables in slices of primary-key ranges, so every
    duplicate of a key is in one slice and the uniqueness rule stays exact. A table the spec gives no
    primary key has no uniqueness rule, and is cut by DuckDB's rowid: read whole, cohort_definition
    (no key in CDM v5.4, 990,910 rows at 600,000 studies) took the run process from 0.7 to 1.6 GB.

    DuckDB hands DATE and TIMESTAMP columns to pandas as datetime64, so date bounds compare as-is."""
    for t in tables:
        table = f"{quote(stage)}.{quote(t)}"
        n = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        pk = primary_keys.get(t)
        k = -(-n // rows)
        if k <= 1:
            yield t, con.execute(f"SELECT * FROM {table}").df()
            continue
        key = quote(pk) if pk is not None else "rowid"
        bounds = con.execute(f"SELECT quantile_disc({key}, ?) FROM {table}", [[i / k for i in range(1, k)]]).fetchone()[0]
        yield t, con.execute(f"SELECT * FROM {table} WHERE {key} <= ? OR {key} IS NULL", [bounds[0]]).df()
        for lo, hi in zip(bounds, bounds[1:]):
            yield t, con.execute(f"SELECT * FROM {table} WHERE {key} > ? AND {key} <= ?", [lo, hi]).df()
        yield t, con.execute(f"SELECT * FROM {table} WHERE {key} > ?", [bounds[-1]]).df()


def rules(con, stage: str, published: str, tables: list[str], spec_columns: dict[str, list[str]]) -> list[Rule]:
    out: list[Rule] = []
    for t in tables:
        cols = spec_columns[t]
        out.append(Rule(f"cdmField.{t}", t, "*", f"{t}.*",
                        lambda g, c=cols: g.expectations.ExpectTableColumnsToMatchSet(column_set=c, exact_match=True),
                        level="batch", message="columns differ from the CDM v5.4 spec (schema drift)"))
    for row in _catalog("OMOP_CDMv5.4_Field_Level.csv"):
        t, f = row["cdmTableName"].lower(), row["cdmFieldName"].strip('"').lower()
        if t not in tables or f not in spec_columns[t]:
            continue
        where = f"{t}.{f}"
        if row["isRequired"] == "Yes":
            m = _mostly(row["isRequiredThreshold"])
            out.append(Rule(f"isRequired.{where}", t, f, where,
                            lambda g, c=f, m=m: g.expectations.ExpectColumnValuesToNotBeNull(column=c, mostly=m),
                            level="batch", message="is NULL in a required field"))
        if row["isPrimaryKey"] == "Yes":
            m = _mostly(row["isPrimaryKeyThreshold"])
            out.append(Rule(f"isPrimaryKey.{where}", t, f, where,
                            lambda g, c=f, m=m: g.expectations.ExpectColumnValuesToBeUnique(column=c, mostly=m),
                            level="batch", message="is a duplicate primary key"))
        if row["isForeignKey"] == "Yes" and (t, f) not in _INVERTED_FKS:
            fk_t, fk_f = row["fkTableName"].lower(), row["fkFieldName"].lower()
            if fk_t in VOCAB_TABLES:
                sql = (f"SELECT DISTINCT s.{quote(f)} FROM {quote(stage)}.{quote(t)} s JOIN {quote(published)}.{quote(fk_t)} r "
                       f"ON r.{quote(fk_f)} = s.{quote(f)}")
            elif fk_t in tables or fk_t in spec_columns:
                sql = (f"SELECT DISTINCT s.{quote(f)} FROM {quote(stage)}.{quote(t)} s WHERE s.{quote(f)} IN "
                       f"(SELECT {quote(fk_f)} FROM {quote(stage)}.{quote(fk_t)} UNION ALL "
                       f"SELECT {quote(fk_f)} FROM {quote(published)}.{quote(fk_t)})")
            else:
                continue
            keys = _present(con, sql)
            m = _mostly(row["isForeignKeyThreshold"])
            out.append(Rule(f"isForeignKey.{where}", t, f, f"{where} -> {fk_t}.{fk_f}",
                            lambda g, c=f, k=keys, m=m: g.expectations.ExpectColumnValuesToBeInSet(column=c, value_set=k, mostly=m),
                            level="batch", message=f"does not exist in {fk_t}.{fk_f}"))
        if row["fkDomain"]:
            keys = _present(con, f"SELECT DISTINCT s.{quote(f)} FROM {quote(stage)}.{quote(t)} s JOIN {quote(published)}.concept c "
                                 f"ON c.concept_id = s.{quote(f)} WHERE c.domain_id = ? OR c.concept_id = 0", [row["fkDomain"]])
            m = _mostly(row["fkDomainThreshold"])
            out.append(Rule(f"fkDomain.{where}", t, f, where,
                            lambda g, c=f, k=keys, m=m: g.expectations.ExpectColumnValuesToBeInSet(column=c, value_set=k, mostly=m),
                            level="batch", message=f"is not a concept of domain {row['fkDomain']}"))
        if row["isStandardValidConcept"] == "Yes":
            keys = _present(con, f"SELECT DISTINCT s.{quote(f)} FROM {quote(stage)}.{quote(t)} s JOIN {quote(published)}.concept c "
                                 f"ON c.concept_id = s.{quote(f)} WHERE (c.standard_concept = 'S' AND c.invalid_reason IS NULL) "
                                 f"OR c.concept_id = 0")
            m = _mostly(row["isStandardValidConceptThreshold"])
            out.append(Rule(f"isStandardValidConcept.{where}", t, f, where,
                            lambda g, c=f, k=keys, m=m: g.expectations.ExpectColumnValuesToBeInSet(column=c, value_set=k, mostly=m),
                            level="batch", message="is not a standard, valid concept"))
        low, high = row["plausibleValueLow"], row["plausibleValueHigh"]
        if low or high:
            lo = _as_bound(low) if low else None
            hi = _as_bound(high) if high else None
            m = _mostly(row["plausibleValueLowThreshold"] or row["plausibleValueHighThreshold"])
            out.append(Rule(f"plausibleValue.{where}", t, f, where,
                            lambda g, c=f, lo=lo, hi=hi, m=m: g.expectations.ExpectColumnValuesToBeBetween(
                                column=c, min_value=lo, max_value=hi, mostly=m),
                            level="batch", message=f"is outside the plausible range {low or '-inf'}..{high or 'inf'}"))
        if row["plausibleStartBeforeEnd"] == "Yes":
            end = row["plausibleStartBeforeEndFieldName"].lower()
            if end in spec_columns[t]:
                m = _mostly(row["plausibleStartBeforeEndThreshold"])
                out.append(Rule(f"plausibleStartBeforeEnd.{where}", t, f, where,
                                lambda g, a=end, b=f, m=m: g.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
                                    column_A=a, column_B=b, or_equal=True, ignore_row_if="either_value_is_missing", mostly=m),
                                level="batch", message=f"is after {end}"))
    return out


def _as_bound(expr: str):
    b = _bound(expr)
    return pd.Timestamp(b) if isinstance(b, dt.date) else b
