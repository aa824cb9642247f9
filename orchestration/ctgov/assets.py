"""ClinicalTrials.gov raw ingestion: a thin Dagster shell around transforms.ctgov.ingest."""

import dagster as dg

from orchestration.resources import WAREHOUSE_POOL, PathsResource, WarehouseResource
from transforms.ctgov.ingest import ingest_landing


@dg.asset(
    key=dg.AssetKey(["raw", "ctgov_study_version"]),
    group_name="ctgov",
    kinds={"duckdb", "json"},
    pool=WAREHOUSE_POOL,
    description=(
        "Append-only history of ClinicalTrials.gov API v2 study records landed under "
        "`<landing>/ctgov/` (single studies, API pages, the bulk zip). One row per distinct "
        "content of a study (nctId from inside the record; hash ignores versionHolder). "
        "Files are registered once per sha256 in raw.landed_file; unreadable files are marked "
        "failed with the reason, unkeyable records go to quarantine.record."
    ),
)
def ctgov_study_version(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, paths: PathsResource
) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        summary = ingest_landing(con, paths.landing_path, run_id=context.run.run_id)
        versions, studies = con.execute(
            "SELECT count(*), count(DISTINCT nct_id) FROM raw.ctgov_study_version"
        ).fetchone()
    for err in summary.errors:
        context.log.warning(err)
    return dg.MaterializeResult(
        metadata={
            **{k: dg.MetadataValue.int(v) for k, v in summary.as_dict().items()},
            "dagster/row_count": dg.MetadataValue.int(versions),
            "studies_total": dg.MetadataValue.int(studies),
            "failed_files": dg.MetadataValue.md(
                "\n".join(f"- {e}" for e in summary.errors[:20]) or "none"
            ),
        }
    )
