"""`trialhouse`: the pipeline from a terminal. Every command materialises the same Dagster assets
the UI shows (in-process), so there is no second code path to drift."""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

from trialhouse.settings import ENV_EXPORT, ENV_LANDING, ENV_WAREHOUSE, SAMPLE_LANDING, Settings


def _summary(report, settings: Settings) -> dict:
    raw = report.metadata.get("raw/ctgov_study_version", {})
    return {
        "run_id": report.run_id,
        "success": report.success,
        "warehouse": str(settings.warehouse),
        "files_seen": raw.get("files_seen", 0),
        "files_failed": raw.get("files_failed", 0),
        # each failed file's error, naming the file (and the record and field where there is one)
        "failed_files": _listed(raw.get("failed_files")),
        # beside ctgov/ and sites/, where no step reads (a file at the landing folder's top, a zip in sites/)
        "unread_paths": raw.get("unread_paths", []),
        "studies_seen": raw.get("studies_seen", 0),
        "new_versions": raw.get("new_versions", 0),
        "published": report.value("publish/warehouse", "studies_published", 0),
        # Records held this run (studies, deliveries, participants), as `quarantine list` counts them:
        # every asset that holds records back reports how many under "quarantined".
        "quarantined": raw.get("records_quarantined", 0)
        + sum(m.get("quarantined", 0) for k, m in report.metadata.items() if k != "publish/warehouse"),
        "site_deliveries_loaded": report.value("raw/site_delivery", "loaded", 0),
        "site_deliveries_held": report.value("raw/site_delivery", "held", 0),
        # folders under sites/ without their manifest.json yet: not decided, not an error
        "site_deliveries_waiting": report.value("raw/site_delivery", "waiting", 0),
        # delivery folders not decided this run, each with why (cannot be read, changed while read)
        "site_deliveries_undecided": _listed(report.value("raw/site_delivery", "undecided_folders", None)),
        # superseded this run by a newer delivery of the same study and site (on arrival, or an older one
        # displaced), each with by what: kept in raw.site_delivery, not loaded into the current data
        "site_deliveries_superseded": report.value("raw/site_delivery", "superseded", 0),
        "superseded_deliveries": _listed(report.value("raw/site_delivery", "superseded_deliveries", None)),
        # studies whose site data waits for a published registry record (a mistyped NCT id waits for ever):
        # loaded, neither checked nor held, which only the run's log said
        "site_studies_waiting_for_registry": list(report.value("stage/site_data", "waiting_for_registry", None) or []),
        # How the analysts' file was replaced: 'patched', 'copied', or null when nothing changed.
        "snapshot": report.value("publish/warehouse", "snapshot_mode", None),
        "snapshot_bytes_written": report.value("publish/warehouse", "snapshot_bytes_written", 0),
        # For a patch: 'checksums' (DuckDB's, 8 bytes a block) or 'whole' (both files read).
        "snapshot_compared": report.value("publish/warehouse", "snapshot_compared", None),
        "blocked": any(not c["passed"] and c["severity"] == "ERROR" for c in report.checks.values()),
        # Why: each blocking check that failed, with its batch rules and Data Docs (the CLI's instance is
        # ephemeral, so the check's metadata is not to be found anywhere after the run).
        "blocked_by": {name: {"batch_rule_failures": _listed(c["metadata"].get("batch_rule_failures")),
                              "data_docs": c["metadata"].get("data_docs") or None}
                       for name, c in report.checks.items() if not c["passed"] and c["severity"] == "ERROR"},
        # Rules of level 'warning' that found something (e.g. OMOP values cut to their column's length):
        # published all the same, and listed with the run's rule results in quarantine.rule_result.
        # The site gate repeats the OMOP gate's warnings (it validates the same stage again): listed once.
        "warnings": list(dict.fromkeys(w for c in report.checks.values() for w in _listed(c["metadata"].get("warnings")))),
        # A blocking check that failed is a block (blocked_by), not a crash: Dagster fails its step, and
        # the summary listed it here too, as "DagsterAssetCheckFailedError" under a FAILED run.
        "failures": [f for f in report.failures if _BLOCK_ERROR not in f],
        "step_seconds": report.step_seconds,
        "step_windows": report.step_windows,
    }


_BLOCK_ERROR = "DagsterAssetCheckFailedError"


def _listed(markdown) -> list[str]:
    """The items of a check's markdown list ("- a\n- b"; "none" when empty)."""
    text = str(markdown or "")
    return [] if text.strip() in ("", "none") else [line[2:] if line.startswith("- ") else line
                                                   for line in text.splitlines() if line.strip()]


def _not_from_env(settings: Settings, names=("landing", "warehouse", "export", "vocab")) -> list[tuple[str, str]]:
    """(name, value) of the paths a follow-up command would not take from the environment by itself."""
    plain = Settings.from_env()
    return [(n, str(getattr(settings, n))) for n in names if getattr(settings, n) != getattr(plain, n)]


def _path_args(settings: Settings) -> str:
    """The options a follow-up command needs to reach the same warehouse, landing, export and vocabulary.
    A bare `trialhouse quarantine list` after a run elsewhere read ./data and said nothing was held."""
    return "".join(f" --{name} {shlex.quote(value)}" for name, value in _not_from_env(settings))


def _print_human(summary: dict, path_args: str = "") -> None:
    state = ("completed" if summary["success"] else "BLOCKED by its gate: this run's batch was not published"
             if summary["blocked"] and not summary["failures"] else "FAILED")
    print(f"run {summary['run_id']}: {state}")
    for key in ("files_seen", "files_failed", "studies_seen", "new_versions", "site_deliveries_loaded",
                "site_deliveries_held", "site_deliveries_superseded", "site_deliveries_waiting", "published",
                "quarantined", "blocked"):
        print(f"  {key:<27} {summary[key]}")
    for name, why in summary.get("blocked_by", {}).items():
        print(f"  blocked by {name}:")
        for failure in why["batch_rule_failures"] or ["(no batch rule: see the Data Docs)"]:
            print(f"    - {failure}")
        if why["data_docs"]:
            print(f"    Data Docs: {why['data_docs']}")
    for w in summary.get("warnings", []):
        print(f"  warning: {w}")
    for rel in summary.get("unread_paths", []):
        print(f"  not read: {rel} (registry records go under ctgov/, site deliveries in sites/<delivery id>/)")
    for f in summary["failures"]:
        print(f"  failure: {f}")
    for error in summary.get("failed_files", []):
        print(f"  failed file: {error}")
    if summary["files_failed"] > len(summary.get("failed_files", [])):
        print(f"  ... {summary['files_failed'] - len(summary['failed_files'])} more failed file(s): the run's log names each")
    for why in summary.get("site_deliveries_undecided", []):
        print(f"  site delivery not decided: {why}")
    for why in summary.get("superseded_deliveries", []):
        print(f"  site {why}")
    for nct_id in summary.get("site_studies_waiting_for_registry", []):
        print(f"  site data of {nct_id} waits for a published registry record of that study (not checked, not published)")
    if summary["quarantined"] or summary["files_failed"]:
        print(f"  `trialhouse quarantine list{path_args}` says what is held and why; "
              f"`trialhouse quarantine retry{path_args}` tries it again after a fix")


def _exit_code(summary: dict) -> int:
    return 0 if summary["success"] and not summary["blocked"] else 1


def cmd_run(args) -> int:
    from trialhouse.runner import run_pipeline

    settings = Settings.from_env(warehouse=args.warehouse, landing=args.landing, export=args.export, vocab=args.vocab)
    if not _paths_usable(settings, "run", args.json):
        return 2
    summary = _summary(run_pipeline(settings), settings)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_human(summary, _path_args(settings))
    return _exit_code(summary)


def _paths_usable(settings: Settings, command: str, as_json: bool = False) -> bool:
    """The landing folder is there, the vocabulary folder given has a CONCEPT.csv, and the warehouse path
    is one to write: a mistyped landing path ran an empty pass, created a warehouse and exited 0 as if all
    were well; a mistyped vocabulary folder ran every step before the vocabulary's failed. With `as_json`
    the reason is also printed as the run's one JSON object, on stdout."""
    problem = None
    if not Path(settings.landing).is_dir():
        problem = (f"landing folder {settings.landing} is not a folder (set --landing or TRIALHOUSE_LANDING; "
                   f"`trialhouse demo` makes one with the bundled sample)")
    elif settings.vocab and (what := _vocabulary_problem(settings.vocab)):
        problem = (f"vocabulary folder {settings.vocab} {what} (set --vocab or TRIALHOUSE_VOCAB to an Athena "
                   f"download unzipped, or leave both unset for the bundled demo vocabulary)")
    else:
        problem = _foreign_warehouse(settings)
    if problem:
        print(f"trialhouse {command}: {problem}; nothing was done", file=sys.stderr)
        if as_json:
            print(json.dumps({"success": False, "warehouse": str(settings.warehouse), "published": 0, "blocked": False,
                              "failures": [f"{problem}; nothing was done"]}))
    return problem is None


def _vocabulary_problem(directory: str) -> str | None:
    from transforms.omop.vocabulary import missing_required

    if not Path(directory).is_dir():
        return "is not a folder"
    missing = missing_required(Path(directory))
    return f"has no {' or '.join(missing)}" if missing else None


def _foreign_warehouse(settings: Settings) -> str | None:
    """A warehouse path naming a file of one's own got it replaced (see trialhouse.snapshot.foreign_target)."""
    from trialhouse.snapshot import foreign_target

    problem = foreign_target(settings.warehouse)
    return (f"{problem}; it is not replaced (set --warehouse or TRIALHOUSE_WAREHOUSE to a new path)"
            if problem else None)


def _warehouse_ours(settings: Settings, command: str) -> bool:
    problem = _foreign_warehouse(settings)
    if problem:
        print(f"trialhouse {command}: {problem}; nothing was done", file=sys.stderr)
    return problem is None


def cmd_demo(args) -> int:
    from trialhouse.runner import run_pipeline

    base = Path(args.dir)
    landing = base / "landing"
    settings = Settings(warehouse=str(base / "warehouse.duckdb"), landing=str(landing),
                        export=str(base / "exports"), vocab=None)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"trialhouse demo: cannot make the demo folder {base} ({exc.strerror}); nothing was done", file=sys.stderr)
        return 2
    if not _warehouse_ours(settings, "demo"):
        return 2
    # The demo landing set is a copy: add your own files to it and rerun `trialhouse run`.
    shutil.copytree(SAMPLE_LANDING, landing, dirs_exist_ok=True)
    # A synthetic site delivery for the seed study (generated, never real participant data).
    from trialhouse.synth_site import generate_delivery

    # One participant dies after their last visit, so omop.death and Patient.deceased are shown too.
    generate_delivery(landing / "sites", study="NCT06668571", participants=30, sites=1, seed=20251014, deaths=1)
    report = run_pipeline(settings)
    summary = _summary(report, settings)
    _print_human(summary, _path_args(settings))
    print()
    _print_demo_tour(settings, run_id=summary["run_id"])
    return _exit_code(summary)


DEMO_QUERIES = [
    ("Published studies (fhir.research_study)",
     "SELECT nct_id, status, phase, target_enrollment AS target, actual_enrollment AS actual, left(sponsor, 30) AS sponsor "
     "FROM fhir.research_study ORDER BY nct_id"),
    ("Sites per study (fhir.research_study_site)",
     "SELECT nct_id, count(*) AS sites, count(DISTINCT country) AS countries FROM fhir.research_study_site "
     "GROUP BY ALL ORDER BY sites DESC LIMIT 5"),
    ("The seed study's arms in OMOP (omop.cohort_definition)",
     "SELECT cohort_definition_id, cohort_definition_name FROM omop.cohort_definition "
     "WHERE cohort_definition_name LIKE 'NCT06668571:%' ORDER BY 1"),
    ("Deaths in the synthetic site data (omop.death)",
     "SELECT d.person_id, d.death_date, d.cause_source_value AS cause, c.concept_name AS cause_concept "
     "FROM omop.death d LEFT JOIN omop.concept c ON c.concept_id = d.cause_concept_id ORDER BY 1"),
    ("Held back by the gate (quarantine.record)",
     "SELECT record_key, suite, rule, left(reason, 70) AS reason FROM quarantine.record WHERE released_at IS NULL"),
]


SITE_QUERY_TITLES = {
    "phq9_change_by_arm": "Mean PHQ-9 change from baseline to day 1 by arm (synthetic site data)",
    "adverse_events_by_arm": "Adverse events by arm",
    "participants_per_site": "Participants per site",
}


def _site_queries(nct_id: str = "NCT06668571"):
    """The three site-data questions of transforms/omop/participants/queries.sql, for the seed study."""
    from transforms.omop.participants.queries import named_queries

    return [(SITE_QUERY_TITLES.get(name, name), sql, {"nct_id": nct_id}) for name, sql in named_queries("omop").items()]


PROJECT = Path(__file__).resolve().parents[1]


def _print_demo_tour(settings: Settings, queries=DEMO_QUERIES, run_id: str | None = None) -> None:
    import duckdb

    if not Path(settings.warehouse).exists():
        print(f"Nothing was published to {settings.warehouse}: see the failures above.")
        return
    with duckdb.connect(settings.warehouse, read_only=True) as con:
        names = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name NOT LIKE 'stage%' ORDER BY 1, 2"
        ).fetchall()
        # Identifiers come from the catalog, not from input; quoted all the same.
        tables = [(f"{s}.{t}", con.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchone()[0]) for s, t in names]
        print(f"Published warehouse {settings.warehouse}:")
        for name, rows in tables:
            if rows:
                print(f"  {name:<40} {rows:>8} rows")
        for title, sql, *params in [*queries, *_site_queries()]:
            try:
                rel = con.sql(sql, params=params[0] if params else None)
            except duckdb.Error:
                continue  # a table this run did not produce
            print(f"\n{title}:")
            # 140 fits the widest table (adverse events by arm, 7 columns); at 110 DuckDB hid one
            rel.show(max_width=max(140, shutil.get_terminal_size().columns), max_rows=12)
    # `uv run` and DAGSTER_HOME=$PWD/... need the project folder: from elsewhere (`demo --dir` run from
    # another folder) the printed commands change to it first, with the demo's paths made absolute.
    here = Path.cwd().resolve() == PROJECT
    cd = "" if here else f"cd {shlex.quote(str(PROJECT))} && "
    shown = settings if here else Settings(**{k: str(Path(v).resolve()) if v else v for k, v in vars(settings).items()})
    docs = Path(settings.export) / "data_docs" / (run_id or "") / "index.html"
    docs_line = str(docs if here else docs.resolve()) if run_id and docs.exists() else f"{shown.export}/data_docs/<run id>/index.html"
    print(
        "\nLook at it yourself (read-only, works while loads run):\n"
        f"  {cd}uv run python -c \"import duckdb; print(duckdb.connect('{shown.warehouse}', read_only=True)"
        ".sql('select * from fhir.research_study'))\"\n"
        f"  FHIR bulk export: {shown.export}/fhir/ (manifest.json; NDJSON per resource type in parts of NCT id ranges)\n"
        f"  Data Docs:        {docs_line}\n"
        f"  Dagster UI:       {cd}{_ui_command(shown)}   (then open http://127.0.0.1:3000)"
    )


def _ui_command(settings: Settings) -> str:
    """`dg dev` on this demo's paths: it reads them from the environment, so after `demo --dir` a bare
    `dg dev` showed ./data instead."""
    env = {"landing": ENV_LANDING, "warehouse": ENV_WAREHOUSE, "export": ENV_EXPORT}
    given = " ".join(f"{env[n]}={shlex.quote(v)}" for n, v in _not_from_env(settings, tuple(env)))
    return f"DAGSTER_HOME=$PWD/dagster_home {given + ' ' if given else ''}uv run dg dev"


def cmd_sync_ctgov(args) -> int:
    from trialhouse.ctgov_sync import CtgovClient, SyncError, since_date, sync
    from trialhouse.settings import ctgov_base_url, ctgov_min_interval

    settings = Settings.from_env(landing=args.landing)
    base_url = args.base_url or ctgov_base_url()
    problems = [] if base_url.startswith(("http://", "https://")) else [
        f"base URL {base_url!r} is not an http(s) URL (--base-url, TRIALHOUSE_CTGOV_BASE_URL)"]
    if args.since is not None:
        try:
            since_date(args.since)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        print(f"trialhouse sync-ctgov: {'; '.join(problems)}; nothing was done", file=sys.stderr)
        return 2

    def said(attempt: int, attempts: int, error: str, delay: float) -> None:
        print(f"trialhouse sync-ctgov: {error}; attempt {attempt} of {attempts} failed, trying again in {delay:.1f} s",
              file=sys.stderr)

    client = CtgovClient(base_url, on_retry=said,
                         min_interval=ctgov_min_interval() if args.min_interval is None else args.min_interval)
    try:
        report = sync(Path(settings.landing), client, since=args.since, max_pages=args.max_pages)
    except SyncError as exc:
        print(f"trialhouse sync-ctgov: {exc} (progress is checkpointed; run again to resume)", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(json.dumps({k: v for k, v in report.__dict__.items() if k != "files"} | {"files": len(report.files)}))
    return 0


def cmd_quarantine(args) -> int:
    from trialhouse import quarantine

    settings = Settings.from_env(warehouse=args.warehouse, landing=args.landing, export=args.export, vocab=args.vocab)
    if args.action == "list":
        if not _warehouse_ours(settings, "quarantine list"):  # not a warehouse: a traceback said so
            return 2
        return quarantine.print_list(settings, args.json, args.nct or None, args.rule)
    if not _paths_usable(settings, "quarantine retry", args.json):  # before anything is released
        return 2
    released = quarantine.release(settings, args.nct or None, args.rule)
    # With --json, stdout is the run's JSON alone: this line goes to stderr.
    kept = released["deliveries_kept"]
    print(f"released {released['records_released']} record(s) in {released['rows_released']} row(s) "
          f"({released['study_versions_retried']} study version(s), {released['participants_regated']} participant(s) "
          f"to gate again, {released['files_reread']} file(s) to re-read)"
          + (f"; {kept} delivery(ies) the site contract holds stay held: a delivery is decided again when its "
             "folder changes (one whose folder is gone is released)" if kept else "") + "; running",
          file=sys.stderr if args.json else sys.stdout)
    return cmd_run(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trialhouse", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole pipeline on the bundled sample into ./data/")
    demo.add_argument("--dir", default="./data", help="where to put landing/, warehouse.duckdb, exports/")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="one pass over a landing folder")
    run.add_argument("--landing", help="landing folder (env TRIALHOUSE_LANDING, default ./data/landing)")
    run.add_argument("--warehouse", help="DuckDB file (env TRIALHOUSE_WAREHOUSE, default ./data/warehouse.duckdb)")
    run.add_argument("--export", help="export folder (env TRIALHOUSE_EXPORT, default ./data/exports)")
    run.add_argument("--vocab", help="Athena vocabulary folder (env TRIALHOUSE_VOCAB; default: bundled demo vocabulary)")
    run.add_argument("--json", action="store_true", help="print a one-object JSON summary on stdout")
    run.set_defaults(func=cmd_run)

    q = sub.add_parser("quarantine", help="what the gate holds back and why; retry it after a fix")
    q.add_argument("action", choices=["list", "retry"],
                   help="list: the held records and their reasons; retry: release them and run the pipeline again")
    q.add_argument("--nct", action="append", help="only this study: its registry records and its site deliveries' (repeatable)")
    q.add_argument("--rule", help="only records held by this rule, as `list` shows it (site_protocol/eligibility.age_max) "
                                  "or without its suite (enum.overall_status)")
    for flag, what in (("--landing", "landing folder a retry runs on (env TRIALHOUSE_LANDING)"),
                       ("--warehouse", "DuckDB file (env TRIALHOUSE_WAREHOUSE)"),
                       ("--export", "export folder a retry writes (env TRIALHOUSE_EXPORT)"),
                       ("--vocab", "Athena vocabulary folder (env TRIALHOUSE_VOCAB)")):
        q.add_argument(flag, help=what)
    q.add_argument("--json", action="store_true", help="print JSON instead of a table (list) or the run summary (retry)")
    q.set_defaults(func=cmd_quarantine)

    from trialhouse.synth_site import add_parser as add_synth_site

    add_synth_site(sub)

    sy = sub.add_parser("sync-ctgov", help="land new ClinicalTrials.gov API v2 pages since the stored watermark")
    sy.add_argument("--base-url", help="API base (env TRIALHOUSE_CTGOV_BASE_URL, default https://clinicaltrials.gov/api/v2)")
    sy.add_argument("--since", help="YYYY-MM-DD: start from this last-update-post-date instead of the watermark")
    sy.add_argument("--max-pages", type=int, help="stop after N pages (the sync resumes next time)")
    sy.add_argument("--landing", help="landing folder (env TRIALHOUSE_LANDING)")
    sy.add_argument("--min-interval", type=float, help="seconds between requests (env TRIALHOUSE_CTGOV_MIN_INTERVAL, default 1)")
    sy.set_defaults(func=cmd_sync_ctgov)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.func in (cmd_run, cmd_demo, cmd_sync_ctgov) or getattr(args, "action", None) == "retry":
        from trialhouse.settings import setting_problems

        found = setting_problems()
        for problem in found:
            print(f"trialhouse {args.command}: {problem}; nothing was done", file=sys.stderr)
        if found:
            return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # `trialhouse quarantine list | head`: the reader stopped, not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's exit flush would raise again
        return 0


if __name__ == "__main__":
    sys.exit(main())
