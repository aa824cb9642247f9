"""ClinicalTrials.gov API v2 sync in Dagster: lands new pages; the landing sensor takes it from there."""
from typing import Optional

import dagster as dg

from orchestration.resources import PathsResource
from trialhouse.ctgov_sync import CtgovClient, sync
from trialhouse.settings import ctgov_base_url, ctgov_min_interval


class SyncConfig(dg.Config):
    since: Optional[str] = None  # YYYY-MM-DD; default: the stored watermark
    max_pages: Optional[int] = None


@dg.asset(
    key=dg.AssetKey(["ctgov", "api_pages"]),
    group_name="ctgov",
    kinds={"python", "json"},
    description=(
        "Pages of GET /api/v2/studies updated since the stored watermark "
        "(filter.advanced=AREA[LastUpdatePostDate]RANGE[<date>,MAX], pageSize=1000), landed byte for byte "
        "under <landing>/ctgov/api/<sync id>/. Checkpointed per page, so an interrupted sync resumes; "
        "at most one request a second, backoff with jitter on 429/5xx/timeouts. Writes no warehouse table."
    ),
)
def ctgov_api_pages(context: dg.AssetExecutionContext, config: SyncConfig, paths: PathsResource) -> dg.MaterializeResult:
    client = CtgovClient(ctgov_base_url(), min_interval=ctgov_min_interval(), on_retry=lambda attempt, attempts, error, delay:
                         context.log.warning(f"GET /studies: {error}; attempt {attempt} of {attempts} failed, "
                                             f"trying again in {delay:.1f} s"))
    try:
        report = sync(paths.landing_path, client, since=config.since, max_pages=config.max_pages)
    finally:
        client.close()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(report.studies),
            "pages": dg.MetadataValue.int(report.pages),
            "retries": dg.MetadataValue.int(report.retries),
            "completed": dg.MetadataValue.bool(report.completed),
            "since": dg.MetadataValue.text(report.since or "(everything)"),
            "watermark": dg.MetadataValue.text(report.watermark or ""),
            "total_count": dg.MetadataValue.int(report.total_count or 0),
        }
    )


ctgov_sync_job = dg.define_asset_job("ctgov_api_sync", selection=[dg.AssetKey(["ctgov", "api_pages"])])

# Stopped by default: a machine without internet access would only log failures. Start it in the UI.
ctgov_sync_schedule = dg.ScheduleDefinition(
    name="ctgov_api_sync_daily",
    job=ctgov_sync_job,
    cron_schedule="0 6 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily incremental sync of ClinicalTrials.gov study records updated since the watermark.",
)
