"""Contract checks of one site delivery: the manifest, then each CSV, row by row.

Every problem names the delivery, the file, the row and the column, because the person who reads
it is at the site and has only their files to look at. Checks stop at the first failing stage
(manifest, completeness, checksums, content): a later stage means nothing when an earlier fails.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path

from schemas.sites import contract

# A cut-off outside these is a typo, not a delivery: the newest cut-off wins (CONTRACT.md), so one in
# 2062 for 2026 would shadow every later delivery of its site for good. The earliest is DQD's
# plausibleValueLow for the event dates a delivery holds; the latest, the day after today (UTC).
EARLIEST_CUTOFF = dt.date(1950, 1, 1)
MAX_PROBLEMS = 50  # per delivery: enough to fix a file, not a flood
FORMAT_TEXT = {"sdtm-dtc": "valid ISO 8601 date or date-time (YYYY, YYYY-MM, YYYY-MM-DD, YYYY-MM-DDThh:mm[:ss]) of a real day",
               "date": "valid date YYYY-MM-DD", "latitude": "latitude in decimal degrees (-90..90)",
               "longitude": "longitude in decimal degrees (-180..180)"}


@dataclass(frozen=True)
class Problem:
    rule: str            # manifest_contract | manifest_complete | manifest_checksum | csv_contract
    file: str            # manifest.json, dm.csv, ...
    message: str         # readable, starts with the delivery
    row: int | None = None     # data row, 1-based (the header is line 1, row 1 is line 2)
    column: str | None = None
    payload: str | None = None


@dataclass
class ParsedFile:
    kind: str
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]  # (data row number, values by column)


def _where(delivery: str, file: str, row: int | None = None, column: str | None = None, line: int | None = None) -> str:
    """`line`: the row's first physical line, when a quoted newline put it past row + 1."""
    out = f"delivery {delivery}: {file}"
    if row is not None:
        out += f" row {row} (line {line or row + 1})"
    if column:
        out += f" column {column}"
    return out


def check_manifest(data: bytes, folder_name: str) -> tuple[dict | None, list[Problem]]:
    """Parse and check manifest.json; the folder name stands in for the delivery id until it is known."""
    def problem(msg: str, column: str | None = None) -> Problem:
        return Problem("manifest_contract", "manifest.json", f"{_where(folder_name, 'manifest.json', None, column)}: {msg}",
                       column=column)

    try:
        manifest = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [problem(f"not valid JSON ({exc})")]
    if not isinstance(manifest, dict):
        return None, [problem("must be a JSON object")]
    problems = []
    for err in contract.validator("manifest").iter_errors(manifest):
        path = "/".join(str(p) for p in err.instance_path)
        problems.append(problem(err.message, path or None))
    if problems:
        return manifest, problems
    cutoff = _plausible_cutoff(manifest["cutoff_date"])
    if cutoff:
        problems.append(problem(cutoff, "cutoff_date"))
    if manifest["delivery_id"] != folder_name:
        problems.append(problem(f"delivery_id {manifest['delivery_id']!r} is not the folder name {folder_name!r}",
                                "delivery_id"))
    names = [f["name"] for f in manifest["files"]]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(problem(f"files lists {', '.join(dupes)} more than once", "files"))
    if any(n != "sites.csv" for n in names) and "dm.csv" not in names:
        problems.append(problem("participant data without dm.csv (DM is required with any SDTM file)", "files"))
    return manifest, problems


def _plausible_cutoff(text: str) -> str | None:
    """What is wrong with a cut-off date the schema let through (its format allows year 0000), or None."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return f"{text!r} is not a valid date YYYY-MM-DD"
    latest = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)
    if not EARLIEST_CUTOFF <= day <= latest:
        return f"{text!r} is not a plausible cut-off date ({EARLIEST_CUTOFF} to {latest}, the day after today)"
    return None


def _row_problems(kind: str, delivery: str, file: str, n: int, row: dict[str, str], manifest: dict,
                  line: int | None = None) -> list[Problem]:
    present = {k: v for k, v in row.items() if v != ""}
    found: list[tuple[str | None, str]] = []
    for col in contract.required_columns(kind):
        if col not in present:
            found.append((col, "is empty; a value is required"))
    validator = contract.validator(kind)
    if not validator.is_valid(present):
        props = contract.schema(kind)["properties"]
        for err in validator.iter_errors(present):
            if list(err.schema_path)[:1] == ["required"]:
                continue  # reported above, by column
            column = str(err.instance_path[0]) if len(err.instance_path) else None
            if list(err.schema_path)[:1] == ["anyOf"]:
                alts = " or ".join("/".join(a["required"]) for a in contract.schema(kind)["anyOf"])
                found.append((None, f"needs {alts}"))
            elif any(c == column for c, _ in found):
                continue  # one problem per cell: a bad date fails both its pattern and its format
            elif column in props and props[column].get("format") in FORMAT_TEXT:
                found.append((column, f"{present[column]!r} is not a {FORMAT_TEXT[props[column]['format']]}"))
            else:
                found.append((column, err.message))
    study_col, site_col = ("nct_id", "site_id") if kind == "sites" else ("STUDYID", "SITEID")
    if present.get(study_col, manifest["nct_id"]) != manifest["nct_id"]:
        found.append((study_col, f"{present[study_col]!r} is not the manifest's nct_id {manifest['nct_id']!r}"))
    if site_col in present and present[site_col] != manifest["site_id"]:
        found.append((site_col, f"{present[site_col]!r} is not the manifest's site_id {manifest['site_id']!r}"))
    if not found:
        return []
    payload = json.dumps(row, ensure_ascii=False)
    return [Problem("csv_contract", file, f"{_where(delivery, file, n, col, line)}: {msg}", n, col, payload) for col, msg in found]


def _records(text: str) -> tuple[list[list[str]], list[int], str | None]:
    """The CSV's records, the physical line each starts on (one more: where reading stopped), and the
    csv module's error if it stopped at one."""
    reader = csv.reader(io.StringIO(text, newline=""))
    records, lines = [], [1]
    try:
        for record in reader:
            records.append(record)
            lines.append(reader.line_num + 1)
    except csv.Error as exc:
        return records, lines, str(exc)
    return records, lines, None


def check_csv(path: Path, kind: str, manifest: dict) -> tuple[ParsedFile | None, list[Problem]]:
    """Read one CSV as text and check it against its schema; rows are returned only when it passes."""
    delivery, file = manifest["delivery_id"], path.name

    def header_problem(msg: str, column: str | None = None) -> Problem:
        return Problem("csv_contract", file, f"{_where(delivery, file)} header: {msg}", column=column)

    # Read whole, then parsed, so an error names its row and line: read through a text stream, a bad
    # byte anywhere was reported as the header's, by its offset in an 8 KB chunk.
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        before = _records(data[:data.rfind(b"\n", 0, exc.start) + 1].decode("utf-8-sig", "replace"))[0]
        what = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        if not before:
            return None, [header_problem(f"file is {what}")]
        return None, [Problem("csv_contract", file, f"{_where(delivery, file, len(before), line=line)}: {what}", len(before))]
    records, lines, error = _records(text)
    if error is not None:
        if not records:
            return None, [header_problem(f"file is not readable as CSV ({error})")]
        n = len(records)  # the data row being read: before it, the header and n - 1 data rows
        return None, [Problem("csv_contract", file, f"{_where(delivery, file, n, line=lines[-1])}: not readable as CSV "
                                                    f"({error})", n)]
    if not records or not any(records[0]):
        return None, [header_problem("missing (the file is empty)")]
    header = records[0]
    problems = []
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        problems.append(header_problem(f"repeats {', '.join(dupes)}"))
    known = contract.columns(kind)
    for col in contract.required_columns(kind):
        if col not in header:
            problems.append(header_problem(f"required column {col} is missing", col))
    for alt in contract.schema(kind).get("anyOf", []):
        if all(c in header for c in alt["required"]):
            break
    else:
        if contract.schema(kind).get("anyOf"):
            alts = " or ".join("/".join(a["required"]) for a in contract.schema(kind)["anyOf"])
            problems.append(header_problem(f"needs column {alts}"))
    if not contract.allows_extra_columns(kind):
        for col in header:
            if col not in known:
                problems.append(header_problem(f"column {col} is not a column of this file", col))
    if problems:
        return None, problems
    rows: list[tuple[int, dict[str, str]]] = []
    keys: dict[tuple, int] = {}
    key_cols = contract.key_columns(kind)
    for n, values in enumerate(records[1:], start=1):
        if not values:
            continue  # a blank line (e.g. a trailing one) carries no record
        if len(values) != len(header):
            problems.append(Problem("csv_contract", file,
                                    f"{_where(delivery, file, n, line=lines[n])}: has {len(values)} fields, the header has "
                                    f"{len(header)}", n))
        else:
            row = dict(zip(header, values))
            problems += _row_problems(kind, delivery, file, n, row, manifest, lines[n])
            key = tuple(row.get(c, "") for c in key_cols)
            if key in keys:
                problems.append(Problem("csv_contract", file, f"{_where(delivery, file, n, line=lines[n])}: key "
                                        f"{'/'.join(key_cols)} = {'/'.join(key)} repeats row {keys[key]}", n))
            keys.setdefault(key, n)
            rows.append((n, row))
        if len(problems) >= MAX_PROBLEMS:
            break
    return (None, problems) if problems else (ParsedFile(kind, header, rows), [])
