"""Load the OMOP standardized vocabularies into the ``concept`` & co. tables of a CDM schema.

Two input shapes exist and both go through DuckDB's CSV reader, never through Python rows:

* an Athena download (tab separated, dates ``YYYYMMDD``, no quoting: concept names contain
  stray ``"`` that a quoting reader would swallow across lines), tens of millions of rows;
* the bundled demo vocabulary in ``vocab_demo/`` (comma separated, quoted, ISO dates): the
  Synthea27Nj shard of OHDSI EunomiaDatasets plus ``vocab_demo/supplement/``, real standard
  concepts the shard lacks (each row names its evidence in a ``source`` column).

A vocabulary is a release: loading replaces the contents of the nine tables in one transaction.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from schemas.omop.ddl import create_omop_schema
from schemas.omop.spec import cdm_tables, check_identifier, quote
from transforms.omop._db import sql_file, transaction

VOCAB_TABLES = (
    "concept",
    "vocabulary",
    "domain",
    "concept_class",
    "relationship",
    "concept_relationship",
    "concept_synonym",
    "concept_ancestor",
    "drug_strength",
)
DEMO_DIR = Path(__file__).parent / "vocab_demo"
SUPPLEMENT_DIR = DEMO_DIR / "supplement"

ATHENA_FORMAT = {"delim": "\t", "quote": "", "escape": "", "date_format": "%Y%m%d"}
DEMO_FORMAT = {"delim": ",", "quote": '"', "escape": '"', "date_format": "%Y-%m-%d"}


def _typed_select(table: str, date_format: str) -> str:
    """Cast all-VARCHAR CSV columns to CDM types; empty strings are NULL (the demo quotes them as ``""``)."""
    cols = []
    for f in cdm_tables()[table].fields:
        raw = f"nullif({quote(f.name)}, '')"
        if f.duckdb_type == "DATE":
            expr = f"CAST(strptime({raw}, $date_format) AS DATE)"
        elif f.duckdb_type == "VARCHAR":
            expr = raw
        else:
            expr = f"CAST({raw} AS {f.duckdb_type})"
        cols.append(f"{expr} AS {quote(f.name)}")
    return ", ".join(cols)


def _read_csv(table: str, fmt: dict[str, str], with_header_names: bool) -> str:
    """A ``read_csv`` call with every column VARCHAR: type errors surface in the cast, named by column.

    Athena files get the column list from the spec (their headers are trusted to be in spec
    order); the demo files are read by header name because the supplement adds a ``source`` column.
    """
    opts = "header = true, delim = $delim, quote = $quote, escape = $escape, parallel = true"
    if with_header_names:
        return f"read_csv($path, {opts}, all_varchar = true)"
    columns = ", ".join(f"'{f.name}': 'VARCHAR'" for f in cdm_tables()[table].fields)
    return f"read_csv($path, {opts}, columns = {{{columns}}})"


def _insert_file(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, path: Path, fmt: dict[str, str], by_header: bool
) -> None:
    target = f"{quote(schema)}.{quote(table)}"
    sql = f"INSERT INTO {target} SELECT {_typed_select(table, fmt['date_format'])} FROM {_read_csv(table, fmt, by_header)}"
    params = {"path": str(path), "delim": fmt["delim"], "quote": fmt["quote"], "escape": fmt["escape"]}
    if _has_dates(table):
        params["date_format"] = fmt["date_format"]
    con.execute(sql, params)


def _has_dates(table: str) -> bool:
    return any(f.duckdb_type == "DATE" for f in cdm_tables()[table].fields)


def _check_header(path: Path, table: str) -> None:
    """Athena columns are read by position with spec types: refuse a file whose header is in another order."""
    with path.open(encoding="utf-8") as fh:
        header = [h.strip().lower() for h in fh.readline().rstrip("\r\n").split("\t")]
    expected = [f.name for f in cdm_tables()[table].fields]
    if header != expected:
        raise ValueError(f"{path}: header {header} is not the CDM v5.4 column order {expected}")


def _find(directory: Path, table: str) -> Path | None:
    for name in (f"{table.upper()}.csv", f"{table}.csv", f"{table.upper()}.CSV"):
        if (directory / name).exists():
            return directory / name
    return None


REQUIRED_FILES = ("concept", "vocabulary")


def missing_required(directory: Path) -> list[str]:
    """The required files (CONCEPT.csv, VOCABULARY.csv) an Athena folder lacks: the CLI checks this before
    a run, which otherwise ran every step before the vocabulary's failed."""
    return [f"{t.upper()}.csv" for t in REQUIRED_FILES if _find(Path(directory), t) is None]


def load_vocabulary(con: duckdb.DuckDBPyConnection, schema: str, directory: Path | None = None) -> dict[str, int]:
    """Replace the vocabulary tables of ``schema`` with an Athena download, or the demo without ``directory``.

    Returns the row count of each vocabulary table after the load. Athena files that are
    missing (for instance no DRUG_STRENGTH in a small download) leave their table empty;
    CONCEPT and VOCABULARY are required.
    """
    check_identifier(schema)
    create_omop_schema(con, schema)
    with transaction(con):
        for table in VOCAB_TABLES:
            con.execute(f"DELETE FROM {quote(schema)}.{quote(table)}")
        if directory is None:
            _load_demo(con, schema)
        else:
            directory = Path(directory)
            for table in VOCAB_TABLES:
                path = _find(directory, table)
                if path is None:
                    if table in REQUIRED_FILES:
                        raise FileNotFoundError(f"{directory}: no {table.upper()}.csv in this vocabulary folder")
                    continue
                _check_header(path, table)
                _insert_file(con, schema, table, path, ATHENA_FORMAT, by_header=False)
    return {t: con.execute(f"SELECT count(*) FROM {quote(schema)}.{quote(t)}").fetchone()[0] for t in VOCAB_TABLES}


def _load_demo(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    """Demo subset plus supplement; relationships are trimmed to concepts the subset holds.

    The Synthea27Nj shard keeps 266,000 relationships of which all but about 3,000 point at
    concepts outside the shard; keeping them would make every ``isForeignKey`` check fail.
    """
    for table in VOCAB_TABLES:
        for folder in (DEMO_DIR, SUPPLEMENT_DIR):
            path = _find(folder, table)
            if path is not None and table != "concept_relationship":
                _insert_file(con, schema, table, path, DEMO_FORMAT, by_header=True)
    con.execute("CREATE OR REPLACE TEMP TABLE _demo_concept_relationship AS SELECT * FROM "
                f"{quote(schema)}.concept_relationship LIMIT 0")
    staged = "temp.main._demo_concept_relationship"
    sql = f"INSERT INTO {staged} SELECT {_typed_select('concept_relationship', DEMO_FORMAT['date_format'])} " \
          f"FROM {_read_csv('concept_relationship', DEMO_FORMAT, True)}"
    params = {"path": str(DEMO_DIR / "CONCEPT_RELATIONSHIP.csv"), **{k: DEMO_FORMAT[k] for k in ("delim", "quote", "escape")}}
    con.execute(sql, {**params, "date_format": DEMO_FORMAT["date_format"]})
    con.execute(sql_file("vocab_demo_trim.sql", schema=schema))
    con.execute("DROP TABLE temp.main._demo_concept_relationship")


def vocabulary_version(con: duckdb.DuckDBPyConnection, schema: str) -> str | None:
    """The release version, which OMOP keeps on the ``None`` vocabulary row."""
    row = con.execute(
        f"SELECT vocabulary_version FROM {quote(schema)}.vocabulary WHERE vocabulary_id = 'None'"
    ).fetchone()
    return row[0] if row else None
