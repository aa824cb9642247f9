"""Landing sensor: new or changed files under <landing>/ctgov/ become bounded ingestion runs."""
import json

import dagster as dg

from orchestration.resources import PathsResource
from transforms.ctgov.landing_scan import batches, run_key, scan_since

RAW_CTGOV = dg.AssetKey(["raw", "ctgov_study_version"])
TARGETS = {"ctgov": (RAW_CTGOV, "raw__ctgov_study_version")}  # op name of the asset


def landing_run_requests(paths: PathsResource, cursor: str | None) -> tuple[list[dg.RunRequest], str]:
    state = json.loads(cursor) if cursor else {}
    requests: list[dg.RunRequest] = []
    for subdir, (asset_key, op_name) in TARGETS.items():
        files, newest = scan_since(paths.landing_path, subdir, int(state.get(subdir, 0)))
        for batch in batches(files):
            requests.append(
                dg.RunRequest(
                    run_key=run_key(subdir, batch),
                    asset_selection=[asset_key],
                    run_config={"ops": {op_name: {"config": {"files": [f.rel for f in batch]}}}},
                    tags={"trialhouse/landing": subdir, "trialhouse/files": str(len(batch))},
                )
            )
        state[subdir] = newest
    return requests, json.dumps(state, sort_keys=True)


@dg.sensor(
    name="landing_sensor",
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=[RAW_CTGOV],
    description="Notices new or changed files under <landing>/ctgov/ (any depth) and requests ingestion "
                "runs of at most 500 files / 2 GB each. The cursor is one timestamp per folder.",
)
def landing_sensor(context: dg.SensorEvaluationContext, paths: PathsResource):
    requests, cursor = landing_run_requests(paths, context.cursor)
    if not requests:
        return dg.SkipReason("no new or changed landing files")
    return dg.SensorResult(run_requests=requests, cursor=cursor)
