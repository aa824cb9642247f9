"""ClinicalTrials.gov raw ingestion: a thin Dagster shell around transforms.ctgov.ingest."""

import dagster as dg

from typing import Optional

from orchestration.quality.publish import finish_unfinished_publish
from orchestration.resources import WAREHOUSE_POOL, PathsResource, WarehouseResource
from transforms.ctgov.ingest import ingest_landing, landing_file
from transforms.landing_layout import unread_paths
from trialhouse.settings import stage_workers


class IngestConfig(dg.Config):
    """Landing-relative paths to ingest (the landing sensor's batch); none: every new file."""

    files: Optional[list[str]] = None


def _landing_files(root, rels):
    # a file removed since the sensor saw it is not there to read: None
    return [f for f in (landing_file(root / rel, rel) for rel in rels) if f is not None]


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
    context: dg.AssetExecutionContext, config: IngestConfig, warehouse: WarehouseResource, paths: PathsResource
) -> dg.MaterializeResult:
    landing = paths.existing_landing()
    files = None if config.files is None else _landing_files(landing, config.files)
    with warehouse.connect() as con:
        finished = finish_unfinished_publish(context, con, warehouse, paths)  # before any gate of this run
        summary = ingest_landing(con, paths.landing_path, run_id=context.run.run_id, files=files,
                                 workers=stage_workers())
        versions, studies = con.execute(
            "SELECT count(*), count(DISTINCT nct_id) FROM raw.ctgov_study_version"
        ).fetchone()
    for err in summary.errors:
        context.log.warning(err)
    for rel in summary.files_vanished:
        context.log.warning(f"{rel}: removed between the landing scan and its read; read when it lands again")
    unread = unread_paths(landing)
    for rel in unread[:20]:
        context.log.warning(f"{rel}: not read. Registry records go under ctgov/ (any depth), site deliveries in "
                            "sites/<delivery id>/")
    return dg.MaterializeResult(
        metadata={
            **{k: dg.MetadataValue.int(v) for k, v in summary.as_dict().items()},
            "dagster/row_count": dg.MetadataValue.int(versions),
            "studies_total": dg.MetadataValue.int(studies),
            # the export and swap of a publish whose run died after its transaction, done first
            "finished_earlier_publish": dg.MetadataValue.bool(finished),
            # beside ctgov/ and sites/, where no step looks (transforms.landing_layout)
            "unread_paths": dg.MetadataValue.json(unread),
            "failed_files": dg.MetadataValue.md(
                "\n".join(f"- {e}" for e in summary.errors[:20]) or "none"
            ),
        }
    )
