"""Site delivery folders (`<landing>/sites/<delivery_id>/`) → raw.site_delivery, raw.site_roster_row,
raw.sdtm_row and quarantine.record.

A delivery is all or nothing: it loads only when its manifest, every listed file and every row keep
the contract (schemas/sites/CONTRACT.md); otherwise it is held whole, with the reasons. A decision
is taken once per state of the folder (the manifest's sha and the sha of each listed file as found),
so rerunning is a no-op, while a folder that was held because it was still being copied is looked at
again as soon as it changes. A newer delivery (later cut-off, then later delivery id) of the same
study and site supersedes the older one, whatever order they arrive in.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from schemas import ensure_base_schemas, ensure_site_schemas
from schemas.sites import contract
from transforms.ctgov.ingest import is_candidate, sha256_file, shown, utf8_name
from transforms.landing_holds import hold_unreadable
from transforms.sites import sql_text
from transforms.sites.check import ParsedFile, Problem, check_csv, check_manifest

SITES_SUBDIR = "sites"
MANIFEST = "manifest.json"
QUARANTINE_SUITE = "site_contract"
HOLD_SUITE = "site_ingest"  # a delivery folder with nothing to read: no delivery id to hold it under
@dataclass
class SiteIngestSummary:
    deliveries_seen: int = 0      # delivery folders looked at
    unchanged: int = 0            # state already decided in an earlier run
    waiting: list[str] = field(default_factory=list)  # folders without manifest.json yet
    loaded: int = 0
    held: int = 0
    superseded: int = 0           # on arrival, or older ones displaced in this run
    rows: dict[str, int] = field(default_factory=dict)  # rows stored per kind (sites, dm, ...)
    reasons: list[str] = field(default_factory=list)    # why deliveries were held or superseded
    # each superseded delivery and by what: a delivery superseded on arrival is otherwise not loaded,
    # not held and not waiting, and a run summary without it said nothing of the folder at all
    superseded_why: list[str] = field(default_factory=list)
    # folders not decided this run, each "sites/<folder>: why" (cannot be read, a name that is not UTF-8,
    # changed while read): no delivery row, so every run says it again until it can be decided
    undecided: list[str] = field(default_factory=list)
    # of those, the ones with nothing to read: folder -> why, held in quarantine (transforms.landing_holds)
    unreadable: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"deliveries_seen": self.deliveries_seen, "unchanged": self.unchanged, "waiting": len(self.waiting),
                "loaded": self.loaded, "held": self.held, "superseded": self.superseded, "rows": dict(self.rows),
                "undecided": len(self.undecided)}


@dataclass
class _Folder:
    name: str
    rel: str                      # landing-relative, '/'-separated
    manifest_bytes: bytes
    manifest_sha: str
    files: dict[str, str | None]  # listed name -> sha256 found (None: missing)
    state_sha: str


def scan_sites(landing: Path, deliveries: list[str] | None = None,
               problems: dict[str, str] | None = None) -> list[Path]:
    """Delivery folders under `<landing>/sites/`, in name order; hidden and in-flight names skipped.
    A folder whose name is not UTF-8 text (it cannot be stored or logged) goes to `problems` (path -> why)."""
    root = landing / SITES_SUBDIR
    if not root.is_dir():
        return []
    wanted = None if deliveries is None else set(deliveries)
    try:
        found = sorted(p for p in root.iterdir()
                       if p.is_dir() and is_candidate(p.name)
                       and (wanted is None or p.name in wanted))
    except OSError as exc:  # sites/ itself cannot be listed
        if problems is not None:
            problems[SITES_SUBDIR] = f"folder cannot be read: {exc.strerror or exc}"
        return []
    bad = [p for p in found if not utf8_name(p.name)]
    if problems is not None:
        problems.update({f"{SITES_SUBDIR}/{shown(p.name)}": "folder name is not UTF-8 text: rename it" for p in bad})
    return [p for p in found if p not in bad]


def _listed_names(manifest_bytes: bytes) -> list[str]:
    """File names a manifest lists, read defensively: only names the contract knows are ever opened."""
    try:
        data = json.loads(manifest_bytes.decode("utf-8-sig"))
        items = data.get("files", []) if isinstance(data, dict) else []
    except (UnicodeDecodeError, json.JSONDecodeError):
        return []
    if not isinstance(items, list):
        return []
    names = {f["name"] for f in items if isinstance(f, dict) and isinstance(f.get("name"), str)}
    return sorted(n for n in names if n in contract.FILE_NAMES)


# A listed file that is a symbolic link, in a folder's state: it is not read, and holds the delivery.
LINK = "symbolic link"


def _observe(landing: Path, folder: Path) -> _Folder | None:
    """The folder's state. Files are hashed on every scan, not cached by mtime: a file corrected in
    place within one mtime tick must not keep its old checksum, and deliveries are small."""
    mpath = folder / MANIFEST
    if not mpath.is_file():
        return None
    data = mpath.read_bytes()
    msha = hashlib.sha256(data).hexdigest()
    files = {n: (LINK if (folder / n).is_symlink() else sha256_file(folder / n) if (folder / n).is_file() else None)
             for n in _listed_names(data)}
    rel = folder.relative_to(landing).as_posix()
    state = hashlib.sha256(json.dumps({"folder": rel, "manifest": msha, "files": files}, sort_keys=True).encode()).hexdigest()
    return _Folder(folder.name, rel, data, msha, files, state)


def _evaluate(folder: Path, seen: _Folder) -> tuple[dict | None, dict[str, ParsedFile], list[Problem]]:
    """The manifest and the parsed files, or the problems of the first stage that fails."""
    manifest, problems = check_manifest(seen.manifest_bytes, seen.name)
    if problems:
        return manifest, {}, problems
    did = manifest["delivery_id"]
    linked = [n for n, sha in seen.files.items() if sha == LINK]
    if linked:
        return manifest, {}, [Problem("manifest_complete", n, f"delivery {did}: {n} is a symbolic link; a delivery's "
                                      "files must be in its folder (a link may point anywhere)") for n in linked]
    missing = [n for n, sha in seen.files.items() if sha is None]
    if missing:
        return manifest, {}, [Problem("manifest_complete", n, f"delivery {did}: {n} is listed in manifest.json but not "
                                      "in the folder (still being copied?)") for n in missing]
    wrong = [f for f in manifest["files"] if seen.files[f["name"]] != f["sha256"]]
    if wrong:
        return manifest, {}, [Problem("manifest_checksum", f["name"], f"delivery {did}: {f['name']} has sha256 "
                                      f"{seen.files[f['name']]}, manifest.json says {f['sha256']}") for f in wrong]
    parsed: dict[str, ParsedFile] = {}
    problems = []
    for kind in contract.CSV_KINDS:  # roster first, then DM before the other domains
        if f"{kind}.csv" in seen.files:
            pf, found = check_csv(folder / f"{kind}.csv", kind, manifest)
            problems += found
            if pf is not None:
                parsed[kind] = pf
    return manifest, parsed, problems


def _quarantine(con, seen: _Folder, delivery_id: str, problems: list[Problem], run_id, now) -> None:
    rows = [(run_id, now, f"{seen.rel}/{p.file}", delivery_id, "" if p.row is None else f"row {p.row}",
             QUARANTINE_SUITE, p.rule, None if p.column is None else f"{p.file.rsplit('.', 1)[0]}.{p.column}",
             p.message, p.payload) for p in problems]
    con.executemany(
        "INSERT INTO quarantine.record (run_id, quarantined_at, source_file, record_key, source_record,"
        " suite, rule, field, reason, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _store_rows(con, key: int, delivery_id: str, parsed: dict[str, ParsedFile]) -> None:
    if "sites" in parsed:
        cols = contract.columns("sites")
        frame = pd.DataFrame([[n] + [r.get(c) for c in cols] for n, r in parsed["sites"].rows],
                             columns=["row_number"] + cols, dtype=object)
        con.register("incoming_roster", frame)
        try:
            con.execute(sql_text("insert_roster_rows.sql"), [key, delivery_id])
        finally:
            con.unregister("incoming_roster")
    records = [(kind.upper(), n, r.get("USUBJID", ""), json.dumps(r, ensure_ascii=False))
               for kind in contract.DOMAINS if kind in parsed for n, r in parsed[kind].rows]
    if records:
        frame = pd.DataFrame(records, columns=["domain", "row_number", "usubjid", "record"])
        con.register("incoming_sdtm", frame)
        try:
            con.execute(sql_text("insert_sdtm_rows.sql"), [key, delivery_id])
        finally:
            con.unregister("incoming_sdtm")


def _decide(con, landing: Path, folder: Path, seen: _Folder, run_id, now, summary: SiteIngestSummary) -> None:
    manifest, parsed, problems = _evaluate(folder, seen)
    # The files were hashed, then read again to parse: a file replaced in between loaded rows that never
    # matched the manifest. The same state after the parse is the state parsed.
    again = _observe(landing, folder)
    if again is None or again.state_sha != seen.state_sha:
        summary.undecided.append(f"{seen.rel}: changed while it was read; decided once it stops changing")
        return
    ok = not problems
    m = manifest if isinstance(manifest, dict) and not any(p.rule == "manifest_contract" for p in problems) else {}
    delivery_id = m.get("delivery_id", seen.name)
    content = None
    if m:
        content = "participant_data" if any(f["name"] != "sites.csv" for f in m["files"]) else "roster"
    status, reason, newer = "loaded", None, None
    if m:  # a manifest that keeps the contract names its study, site and cut-off, broken files or not
        newer = con.execute(sql_text("newer_loaded.sql"),
                            [m["nct_id"], m["site_id"], content, m["cutoff_date"], delivery_id]).fetchone()
    if not ok:
        status = "held"
        reason = "; ".join(p.message for p in problems[:3])
        if len(problems) > 3:
            reason += f"; and {len(problems) - 3} more problems"
    if newer:
        # Superseded whether or not it keeps the contract: held, an older delivery arriving after the newer
        # one stayed in `quarantine list` for good, where arriving first it was released (order-independent).
        broke = f"; it broke the contract too: {reason}" if not ok else ""
        status = "superseded"
        reason = f"delivery {delivery_id}: superseded on arrival by {newer[0]} (cut-off {newer[1]}"
        if str(newer[1]) == str(m["cutoff_date"]):  # the tie-break, or the user cannot tell why
            reason += f", the same as this one's: of two deliveries with one cut-off, the later delivery id is kept"
        reason += ")" + broke
    manifest_json = json.dumps(manifest) if manifest is not None else None
    counts = {kind: len(pf.rows) for kind, pf in parsed.items()} if ok else None
    con.begin()
    try:
        key = con.execute(sql_text("insert_delivery.sql"), [
            delivery_id, m.get("nct_id"), m.get("site_id"), m.get("cutoff_date"), content, manifest_json, seen.rel,
            seen.manifest_sha, seen.state_sha, json.dumps(seen.files, sort_keys=True), status, reason,
            None if counts is None else json.dumps(counts), now, run_id,
        ]).fetchone()[0]
        if ok:
            _store_rows(con, key, delivery_id, parsed)
            for kind, n in counts.items():
                summary.rows[kind] = summary.rows.get(kind, 0) + n
        if status == "loaded":
            displaced = con.execute(sql_text("supersede_older.sql"), [
                m["nct_id"], m["site_id"], content, m["cutoff_date"], delivery_id, key,
                f"superseded by delivery {delivery_id} (cut-off {m['cutoff_date']})"]).fetchall()
            said = [f"delivery {d[0]}: superseded by {delivery_id}" if d[0] != delivery_id else
                    f"delivery {d[0]}: its earlier state superseded by the one re-sent (cut-off {m['cutoff_date']})"
                    for d in displaced]
            summary.superseded += len(displaced)
            summary.reasons += said
            summary.superseded_why += said
            con.execute(sql_text("release_superseded.sql"), [
                m["nct_id"], m["site_id"], content, m["cutoff_date"], delivery_id, key, now])
        if problems:
            _quarantine(con, seen, delivery_id, problems, run_id, now)
        if status != "held":  # an earlier held state of this id is resolved; a superseded one's problems moot
            con.execute("UPDATE quarantine.record SET released_at = ? WHERE suite = ? AND record_key = ?"
                        " AND released_at IS NULL", [now, QUARANTINE_SUITE, delivery_id])
        con.commit()
    except Exception:
        con.rollback()
        raise
    if status == "loaded":
        summary.loaded += 1
    elif status == "superseded":
        summary.superseded += 1
        summary.reasons.append(reason)
        summary.superseded_why.append(reason)
    else:
        summary.held += 1
        summary.reasons.append(reason)


def ingest_site_deliveries(con, landing: Path, run_id: str | None = None,
                           deliveries: list[str] | None = None) -> SiteIngestSummary:
    """Evaluate every delivery folder under `<landing>/sites/` (or only the named ones) whose state is new."""
    ensure_base_schemas(con)
    ensure_site_schemas(con)
    landing = Path(landing)
    summary = SiteIngestSummary()
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    observed = []
    unreadable = summary.unreadable
    folders = scan_sites(landing, deliveries, unreadable)
    for folder in folders:
        try:
            observed.append((folder, _observe(landing, folder)))
        except OSError as exc:  # no permission on the folder or a listed file: the other deliveries go on
            summary.deliveries_seen += 1
            unreadable[f"{SITES_SUBDIR}/{folder.name}"] = (f"cannot be read: {exc.strerror or exc}"
                                                           + (f" ({Path(exc.filename).name})" if exc.filename else ""))
    # States decided in an earlier run, in one query: a statement per folder was half of a scan of
    # unchanged deliveries (300 folders: 0.22 s), and a landing folder keeps its deliveries.
    # A folder is unchanged when its state is its latest row's, not any earlier row's: a folder
    # restored to a state it had before must be decided again, or the warehouse keeps the later one.
    rels = sorted(seen.rel for _, seen in observed if seen is not None)
    latest = dict(con.execute(sql_text("latest_states.sql"), [rels]).fetchall())
    for folder, seen in observed:
        summary.deliveries_seen += 1
        if seen is None:
            summary.waiting.append(folder.name)
        elif latest.get(seen.rel) == seen.state_sha:
            summary.unchanged += 1
        else:
            try:
                _decide(con, landing, folder, seen, run_id, now, summary)
            except OSError as exc:  # became unreadable since observed: nothing was written for it
                unreadable[seen.rel] = f"cannot be read: {exc.strerror or exc}"
    summary.undecided[:0] = [f"{rel}: {why}" for rel, why in unreadable.items()]
    hold_unreadable(con, landing, HOLD_SUITE, "delivery_readable", [f"{SITES_SUBDIR}/{f.name}" for f in folders],
                    unreadable, run_id, deliveries is None)
    return summary
