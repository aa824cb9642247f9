"""FHIR R5: the batch mapped, validated and staged, with its blocking gate."""
import dagster as dg

from expectations.batch_rules import decide
from expectations.fhir_gate import stage_fhir
from expectations.suites.fhir_staging import SUITE
from orchestration.quality.gate import gate_result, gx_runner
from orchestration.resources import WAREHOUSE_POOL, PathsResource, WarehouseResource
from transforms.fhir.store import NOT_PARTICIPANT
from trialhouse.settings import GateLimits

STAGE_KEY = dg.AssetKey(["stage", "fhir_resource"])


@dg.asset(
    key=STAGE_KEY,
    group_name="fhir",
    kinds={"duckdb", "fhir"},
    pool=WAREHOUSE_POOL,
    deps=[dg.AssetKey(["stage", "ctgov_study"])],
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        "Each staged study as FHIR R5: ResearchStudy (HL7's clinicaltrials-gov mapping) with Organization, "
        "Practitioner(Role), Location and per-site ResearchStudy, eligibility Group and intervention "
        "EvidenceVariable resources, each validated against the R5 JSON schema, cardinalities and bound value "
        "sets. A study that cannot map or validate is quarantined whole; the rest go to stage_fhir.resource."
    ),
)
def stage_fhir_resource(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                        paths: PathsResource) -> dg.MaterializeResult:
    run_id = context.run.run_id
    with warehouse.connect() as con:
        res = stage_fhir(con, gx_runner(context, paths), run_id)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(res.resources),
        "studies": dg.MetadataValue.int(res.studies),
        "quarantined": dg.MetadataValue.int(res.quarantined),
        "resources_by_type": dg.MetadataValue.json(res.by_type),
        "data_docs": dg.MetadataValue.path(res.suite.docs_path or "" if res.suite else ""),
    })


@dg.asset_check(
    asset=STAGE_KEY,
    name="fhir_staging_gate",
    blocking=True,
    description="Blocking check (blocking=True): blocks the publish when the batch lacks a ResearchStudy for a study, when too large a share of "
                "studies was quarantined, or when the re-mapped studies would lose more than "
                "TRIALHOUSE_MIN_ROW_RATIO of their published resources (a collapse).",
)
def fhir_staging_gate(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    run_id = context.run.run_id
    limits = GateLimits.from_env()
    with warehouse.connect() as con:
        staged = con.execute("SELECT count(*) FROM stage.ctgov_study").fetchone()[0]
        held = con.execute("SELECT count(*) FROM quarantine.record WHERE run_id = ? AND suite = ?", [run_id, SUITE]).fetchone()[0]
        d = decide(con, run_id, SUITE, limits, staged + held, held)
        # the registry's resources alone: a study's participants are staged by the site stage, if at all
        before, after = con.execute(
            f"SELECT (SELECT count(*) FROM fhir.resource WHERE nct_id IN (SELECT nct_id FROM stage.ctgov_study) "
            f"AND {NOT_PARTICIPANT}), (SELECT count(*) FROM stage_fhir.resource WHERE nct_id IS NOT NULL AND {NOT_PARTICIPANT})"
        ).fetchone() if _has_published(con) else (0, 0)
    if before and after < limits.min_row_ratio * before:
        d.passed = False
        d.failures.append(f"row_count_collapse: the re-mapped studies had {before} published resources, the batch "
                          f"has {after} (below {limits.min_row_ratio:.0%}, TRIALHOUSE_MIN_ROW_RATIO)")
    return gate_result(d, staged + held, held)


def _has_published(con) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'fhir' AND table_name = 'resource'").fetchone()[0])
