"""Registry staging and its blocking gate: suite `ctgov_registry` over the run's batch."""
import dagster as dg

from expectations.batch_rules import decide
from expectations.registry_gate import stage_registry
from expectations.suites.ctgov_registry import SUITE
from orchestration.quality.gate import gate_result, gx_runner
from orchestration.resources import WAREHOUSE_POOL, PathsResource, WarehouseResource
from trialhouse.settings import GateLimits

STAGE_KEY = dg.AssetKey(["stage", "ctgov_study"])


@dg.asset(
    key=STAGE_KEY,
    group_name="quality",
    kinds={"duckdb", "great_expectations"},
    pool=WAREHOUSE_POOL,
    deps=[dg.AssetKey(["raw", "ctgov_study_version"])],
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        "The registry batch of this run: each study's current version not yet published or held, "
        "validated by great-expectations suite `ctgov_registry` (NCT id pattern, required modules, "
        "API v2 enum values, partial-date formats, non-negative enrolment, site coordinates). "
        "Failing versions go to quarantine.record with file, record, field and reason; the rest are staged."
    ),
)
def stage_ctgov_study(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                      paths: PathsResource) -> dg.MaterializeResult:
    run_id = context.run.run_id
    with warehouse.connect() as con:
        res = stage_registry(con, gx_runner(context, paths), run_id)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(res.staged),
            "candidates": dg.MetadataValue.int(res.candidates),
            "staged": dg.MetadataValue.int(res.staged),
            "quarantined": dg.MetadataValue.int(res.quarantined),
            "data_docs": dg.MetadataValue.path(res.suite.docs_path or ""),
        }
    )


@dg.asset_check(
    asset=STAGE_KEY,
    name="ctgov_registry_gate",
    blocking=True,
    description="Blocking check (blocking=True): blocks the publish on schema drift (unknown sections/modules) or when the quarantined "
                "share of the batch is above TRIALHOUSE_MAX_QUARANTINE_SHARE.",
)
def ctgov_registry_gate(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    run_id = context.run.run_id
    with warehouse.connect() as con:
        batch = con.execute("SELECT count(*) FROM stage.ctgov_candidate").fetchone()[0]
        held = con.execute("SELECT count(DISTINCT source_file || source_record) FROM quarantine.record "
                           "WHERE run_id = ? AND suite = ?", [run_id, SUITE]).fetchone()[0]
        d = decide(con, run_id, SUITE, GateLimits.from_env(), batch, held)
    return gate_result(d, batch, held)
