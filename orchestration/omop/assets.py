"""OMOP CDM v5.4: the vocabulary, and the staged trial/site rows with their blocking DQD gate."""
import datetime as dt
import json
from pathlib import Path

import dagster as dg

from expectations.batch_rules import decide
from expectations.omop_gate import stage_trials, values_cut_rules
from expectations.suites.omop_dqd import SUITE
from orchestration.quality.gate import gate_result, gx_runner
from orchestration.resources import WAREHOUSE_POOL, PathsResource, WarehouseResource
from schemas.omop.ddl import create_omop_schema
from transforms.omop.concept_mapping import coverage_report
from transforms.omop.vocabulary import load_vocabulary, vocabulary_version
from transforms.omop.vocabulary_state import current_fingerprint, fingerprint
from trialhouse.settings import GateLimits

VOCAB_KEY = dg.AssetKey(["omop", "vocabulary"])
STAGE_KEY = dg.AssetKey(["stage", "omop"])


@dg.asset(
    key=VOCAB_KEY,
    group_name="omop",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    # Loaded as soon as it is missing (a new instance); a changed TRIALHOUSE_VOCAB is picked up by every
    # `trialhouse run` (fingerprint) or by materialising this asset in the UI.
    automation_condition=dg.AutomationCondition.missing() & ~dg.AutomationCondition.in_progress(),
    description=(
        "OMOP standardized vocabularies in schema `omop` (concept, concept_relationship, concept_ancestor, ...): "
        "an Athena download from TRIALHOUSE_VOCAB / --vocab via DuckDB's CSV reader, else the bundled demo "
        "vocabulary. Reloaded only when the source files change (fingerprint in meta.vocabulary_load)."
    ),
)
def omop_vocabulary(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                    paths: PathsResource) -> dg.MaterializeResult:
    directory = Path(paths.vocab) if paths.vocab else None
    fp = fingerprint(directory)
    with warehouse.connect() as con:
        create_omop_schema(con, "omop")
        if current_fingerprint(con) == fp:
            concepts, relationships = con.execute(
                "SELECT (SELECT count(*) FROM omop.concept), (SELECT count(*) FROM omop.concept_relationship)"
            ).fetchone()
            counts = {"concept": concepts, "concept_relationship": relationships}
            loaded = False
        else:
            counts = load_vocabulary(con, "omop", directory)
            con.execute("INSERT INTO meta.vocabulary_load VALUES (?, ?, ?, ?, ?)",
                        [fp, str(directory or "bundled demo"), vocabulary_version(con, "omop"),
                         dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), json.dumps(counts)])
            loaded = True
        version = vocabulary_version(con, "omop")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(counts.get("concept", 0)),
        "reloaded": dg.MetadataValue.bool(loaded),
        "source": dg.MetadataValue.text(str(directory or "bundled demo vocabulary")),
        "vocabulary_version": dg.MetadataValue.text(version or ""),
        "row_counts": dg.MetadataValue.json(counts),
    })


@dg.asset(
    key=STAGE_KEY,
    group_name="omop",
    kinds={"duckdb", "great_expectations"},
    pool=WAREHOUSE_POOL,
    deps=[dg.AssetKey(["stage", "fhir_resource"]), VOCAB_KEY],
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        "The batch's studies mapped to OMOP CDM v5.4 in schema `stage_omop` by OHDSI Clinical Trials conventions "
        "(sites as location/care_site, investigators as provider, arms as cohort_definition, trial facts as "
        "metadata, conditions and interventions through source_to_concept_map), then validated by suite "
        "`omop_dqd`, generated from the OHDSI Data Quality Dashboard catalog."
    ),
)
def stage_omop(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
               paths: PathsResource) -> dg.MaterializeResult:
    run_id = context.run.run_id
    with warehouse.connect() as con:
        res = stage_trials(con, gx_runner(context, paths), run_id)
        coverage = coverage_report(con, "stage_omop")
        cut = values_cut_rules(con, run_id)
    for rule, rows, example in cut:
        context.log.warning(f"{rule}: {rows} value(s) longer than the CDM column, cut to fit (whole in raw), "
                            f"e.g. {example}")
    return dg.MaterializeResult(metadata={
        "concept_coverage": dg.MetadataValue.md(
            "| vocabulary | rule | terms | share |\n|---|---|---|---|\n"
            + "\n".join(f"| {c['source_vocabulary_id']} | {c['rule']} | {c['terms']} | {c['pct_of_vocabulary']}% |"
                        for c in coverage)),
        "dagster/row_count": dg.MetadataValue.int(sum(res.counts.values())),
        "rows_per_table": dg.MetadataValue.json(res.counts),
        "rules_failed": dg.MetadataValue.int(len(res.suite.failures())),
        "values_cut": dg.MetadataValue.json({rule: rows for rule, rows, _ in cut}),
        "data_docs": dg.MetadataValue.path(res.suite.docs_path or ""),
    })


@dg.asset_check(
    asset=STAGE_KEY,
    name="omop_dqd_gate",
    blocking=True,
    description="Blocking check (blocking=True): blocks the publish when any DQD-derived expectation (isRequired, isPrimaryKey, isForeignKey, "
                "fkDomain, isStandardValidConcept, plausibleValue, plausibleStartBeforeEnd, cdmField) fails "
                "beyond its DQD threshold.",
)
def omop_dqd_gate(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        d = decide(con, context.run.run_id, SUITE, GateLimits.from_env(), 0, 0)
        rows = con.execute("SELECT count(*) FROM stage.ctgov_study").fetchone()[0]
    return gate_result(d, rows, 0)
