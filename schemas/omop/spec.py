"""The OMOP CDM v5.4 specification, read from the OHDSI CommonDataModel CSVs bundled in ``spec/``.

The DDL, the conformance test and the mappings all read the same CSV so that a spec change
is one file swap, not a hunt through hand-written DDL.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SPEC_DIR = Path(__file__).parent / "spec"
FIELD_CSV = SPEC_DIR / "OMOP_CDMv5.4_Field_Level.csv"
TABLE_CSV = SPEC_DIR / "OMOP_CDMv5.4_Table_Level.csv"

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# The CommonDataModel CSV types these integer, the DQD v5.4 catalog types them bigint: they hold
# keys of arbitrary event tables, so the wider type is the one that cannot overflow.
BIGINT_FIELDS = frozenset(
    {
        ("episode", "episode_id"),
        ("episode", "episode_parent_id"),
        ("episode", "person_id"),
        ("episode_event", "episode_id"),
        ("episode_event", "event_id"),
        ("measurement", "measurement_event_id"),
        ("note", "note_event_id"),
        ("observation", "observation_event_id"),
    }
)


def check_identifier(name: str) -> str:
    """Refuse anything but a plain lower-case SQL identifier, since identifiers cannot be bound as parameters."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"not an allowed SQL identifier: {name!r}")
    return name


def check_relation(name: str) -> str:
    """Accept ``name`` or ``schema.name`` made of checked identifiers (relations chosen by code, never by data)."""
    parts = name.split(".") if isinstance(name, str) else [name]
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"not an allowed relation name: {name!r}")
    for part in parts:
        check_identifier(part)
    return name


def quote(name: str) -> str:
    """Quote a checked identifier; ``offset`` (note_nlp) is a reserved word."""
    return '"' + check_identifier(name) + '"'


@dataclass(frozen=True)
class FieldSpec:
    table: str
    name: str
    required: bool
    cdm_datatype: str
    primary_key: bool
    foreign_key: bool
    fk_table: str | None
    fk_field: str | None
    fk_domain: str | None
    fk_class: str | None

    @property
    def duckdb_type(self) -> str:
        t = self.cdm_datatype.lower()
        if t == "integer":
            return "BIGINT" if (self.table, self.name) in BIGINT_FIELDS else "INTEGER"
        if t == "bigint":
            return "BIGINT"
        if t == "float":
            return "DOUBLE"
        if t == "date":
            return "DATE"
        if t == "datetime":
            return "TIMESTAMP"
        if t.startswith("varchar"):
            return "VARCHAR"
        raise ValueError(f"unknown CDM datatype {self.cdm_datatype!r} for {self.table}.{self.name}")

    @property
    def max_length(self) -> int | None:
        """Declared varchar length; DuckDB does not enforce it, so the mappings truncate to it."""
        m = re.fullmatch(r"varchar\((\d+)\)", self.cdm_datatype.lower())
        return int(m.group(1)) if m else None


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: str  # CDM | VOCAB | RESULTS
    required: bool
    fields: tuple[FieldSpec, ...]

    @property
    def primary_key(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.primary_key)

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name}.{name}")


def _na(value: str) -> str | None:
    value = (value or "").strip()
    return None if value in ("", "NA") else value


@lru_cache(maxsize=1)
def cdm_tables() -> dict[str, TableSpec]:
    """Tables in specification order (which is also a valid load order for the clinical tables)."""
    with FIELD_CSV.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with TABLE_CSV.open(encoding="utf-8-sig", newline="") as fh:
        table_rows = list(csv.DictReader(fh))
    fields: dict[str, list[FieldSpec]] = {}
    for r in rows:
        table = r["cdmTableName"].strip().lower()
        name = r["cdmFieldName"].strip().strip('"').lower()
        fk_table = _na(r["fkTableName"])
        fk_field = _na(r["fkFieldName"])
        fields.setdefault(table, []).append(
            FieldSpec(
                table=check_identifier(table),
                name=check_identifier(name),
                required=r["isRequired"].strip() == "Yes",
                cdm_datatype=r["cdmDatatype"].strip(),
                primary_key=r["isPrimaryKey"].strip() == "Yes",
                foreign_key=r["isForeignKey"].strip() == "Yes",
                fk_table=fk_table.lower() if fk_table else None,
                fk_field=fk_field.lower() if fk_field else None,
                fk_domain=_na(r["fkDomain"]),
                fk_class=_na(r["fkClass"]),
            )
        )
    out: dict[str, TableSpec] = {}
    for t in table_rows:
        name = t["cdmTableName"].strip().lower()
        out[name] = TableSpec(
            name=name,
            schema=t["schema"].strip(),
            required=t["isRequired"].strip() == "Yes",
            fields=tuple(fields[name]),
        )
    return out
