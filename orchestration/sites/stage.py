"""Site data through the gate: protocol conformance, then OMOP person-level rows and FHIR subjects."""
import datetime as dt
import json

import dagster as dg

from expectations.batch_rules import decide
from expectations.omop_gate import validate_stage
from expectations.site_gate import stage_site_data
from expectations.suites.omop_dqd import SUITE as OMOP_SUITE
from expectations.suites.site_protocol import SUITE
from orchestration.quality.gate import gate_result, gx_runner
from orchestration.resources import WAREHOUSE_POOL, PathsResource, WarehouseResource
from orchestration.sites.assets import RAW_SITES
from transforms.fhir.research_subject import map_participants_fhir, stamp_versions, subject_rows
from transforms.fhir.store import write_resources
from transforms.fhir.validate import validate_resources
from transforms.omop.participants import map_participants
from transforms.publish import ensure_stages
from transforms.sites.fingerprint import (ensure_tables, last_published, registry_records, site_fingerprint,
                                         stage_fingerprint, stage_scope)
from trialhouse.settings import GateLimits, pseudonym_key

STAGE_KEY = dg.AssetKey(["stage", "site_data"])


@dg.asset(
    key=STAGE_KEY,
    group_name="sites",
    kinds={"duckdb", "great_expectations"},
    pool=WAREHOUSE_POOL,
    deps=[RAW_SITES, dg.AssetKey(["stage", "omop"]), dg.AssetKey(["stage", "fhir_resource"])],
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        "Participant data of the current site deliveries, checked by suite `site_protocol` (age, sex and arms "
        "against the registry record, the study's protocol file in expectations/protocols/, subjects known to "
        "DM; enrolment against target as a warning). Offending participants or rows are quarantined; the rest "
        "map to OMOP person-level tables in stage_omop (pseudonymous person, visits, exposures, measurements, "
        "observations, adverse events, arm cohorts) and to FHIR Patient/ResearchSubject in stage_fhir, then the "
        "OMOP staging schema is re-validated by `omop_dqd`."
    ),
)
def stage_site_data_asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                          paths: PathsResource) -> dg.MaterializeResult:
    run_id = context.run.run_id
    key, is_demo = pseudonym_key()
    runner = gx_runner(context, paths)
    with warehouse.connect() as con:
        ensure_tables(con)
        stage_fingerprint(con, None)
        stage_scope(con, run_id, [])
        delivered = [r[0] for r in con.execute(
            "SELECT DISTINCT nct_id FROM raw.site_delivery_current ORDER BY 1").fetchall()] if _has_sites(con) else []
        rows = registry_records(con, delivered)
        registry = {n: json.loads(p) for n, _, p in rows}
        fingerprint = site_fingerprint(con, {n: h for n, h, _ in rows}, key) if rows else None
        # Deliveries of a study with no gated registry version cannot be checked: their rows wait, not
        # quarantined, for a run that has the record (expectations/site_gate.py). Say so, run by run.
        waiting = [n for n in delivered if n not in registry]
        if waiting:
            context.log.warning(f"site data of {len(waiting)} stud{'y' if len(waiting) == 1 else 'ies'} waits for a "
                                f"published registry record: {', '.join(waiting[:20])}")
        waiting_md = {"waiting_for_registry": dg.MetadataValue.json(waiting)}
        if is_demo and registry:  # only where participants are pseudonymised: a run without site data said it too
            context.log.warning("TRIALHOUSE_PSEUDONYM_KEY is not set: pseudonyms use the public demo key")
        if not registry or fingerprint == last_published(con):
            # Nothing new since the last publish: the published participant rows stand as they are.
            return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(0),
                                                  "studies": dg.MetadataValue.int(len(registry)),
                                                  "skipped": dg.MetadataValue.bool(True), **waiting_md})
        ensure_stages(con)  # the registry's steps may not be in this run (a new delivery alone)
        res = stage_site_data(con, runner, run_id, registry)
        counts = map_participants(con, schema="stage_omop", vocab_schema="omop", pseudonym_key=key, exclude=res.exclude)
        by_study = {nct_id: map_participants_fhir(subject_rows(con, nct_id, exclude=res.exclude), nct_id, key,
                                                  registry=record)
                    for nct_id, record in registry.items()}
        resources = [r for rs in by_study.values() for r in rs]
        stamp_versions(con, resources, dt.datetime.now(dt.timezone.utc))
        problems = [p for ps in validate_resources(resources).values() for p in ps]
        if problems:  # a mapping fault, not bad input: block rather than publish half
            raise RuntimeError(f"{len(problems)} FHIR validation problem(s) in participant resources: {problems[:3]}")
        for nct_id, rs in by_study.items():
            write_resources(con, "stage_fhir", rs, replace_studies=False, nct_id=nct_id)
        stage_scope(con, run_id, list(registry))  # their published participants not staged again go
        dqd = validate_stage(con, runner, run_id)
        stage_fingerprint(con, fingerprint)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(sum(counts.values())),
        "studies": dg.MetadataValue.int(len(registry)),
        "skipped": dg.MetadataValue.bool(False),
        "sdtm_rows": dg.MetadataValue.int(res.rows),
        # records, as every asset reports them and `quarantine list` counts them: here participants
        "quarantined": dg.MetadataValue.int(res.records_held),
        "quarantined_rows": dg.MetadataValue.int(res.quarantined),
        "participants_held": dg.MetadataValue.int(len(res.participants_held)),
        "rows_held_alone": dg.MetadataValue.int(len(res.rows_held)),
        "warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in res.warnings) or "none"),
        "omop_rows": dg.MetadataValue.json(counts),
        "fhir_resources": dg.MetadataValue.int(len(resources)),
        "omop_rules_failed": dg.MetadataValue.int(len(dqd.failures())),
        "pseudonym_key": dg.MetadataValue.text("public demo key" if is_demo else "TRIALHOUSE_PSEUDONYM_KEY"),
        **waiting_md,
    })


def _has_sites(con) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_views() WHERE schema_name = 'raw' "
                            "AND view_name = 'site_delivery_current'").fetchone()[0])


@dg.asset_check(
    asset=STAGE_KEY,
    name="site_protocol_gate",
    blocking=True,
    description="Blocking check (blocking=True): blocks the publish when too large a share of participant rows was quarantined, or when the "
                "OMOP staging schema with participant rows fails a DQD-derived expectation; enrolment above the "
                "registry target is reported as a warning only.",
)
def site_protocol_gate(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    run_id = context.run.run_id
    with warehouse.connect() as con:
        rows = con.execute("SELECT coalesce(max(evaluated), 0) FROM quarantine.rule_result WHERE run_id = ? AND suite = ?",
                           [run_id, SUITE]).fetchone()[0]
        held = con.execute("SELECT count(*) FROM quarantine.record WHERE run_id = ? AND suite = ?",
                           [run_id, SUITE]).fetchone()[0]
        d = decide(con, run_id, SUITE, GateLimits.from_env(), rows, held)
        omop = decide(con, run_id, OMOP_SUITE, GateLimits.from_env(), 0, 0)
    d.passed = d.passed and omop.passed
    d.failures += omop.failures
    d.warnings += omop.warnings  # e.g. participant values cut to their OMOP column (value_cut.*)
    return gate_result(d, rows, held)
