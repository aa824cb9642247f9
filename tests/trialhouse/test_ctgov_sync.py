"""The API v2 sync client against a local fake server replaying real pages, with injected faults."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.trialhouse.fake_ctgov import FakeCtgov
from transforms.ctgov.ingest import ingest_landing
from trialhouse.ctgov_sync import CtgovClient, SyncError, SyncState, sync


def client(fake, **kw):
    kw.setdefault("min_interval", 0.0)
    kw.setdefault("timeout", 0.5)
    kw.setdefault("backoff_base", 0.01)
    return CtgovClient(fake.base_url, **kw)


def test_all_studies_land_exactly_once_despite_faults(tmp_path, con):
    landing = tmp_path / "landing"
    with FakeCtgov(faults={2: "429", 3: "500", 5: "slow", 6: "drop", 8: "500"}) as fake:
        c = client(fake)
        report = sync(landing, c, since="2024-01-01")
        c.close()
    assert report.completed and report.pages == 5 and report.retries == 5
    assert report.total_count == fake.total_studies()
    assert sorted(fake.served) == [0, 1, 2, 3, 4]  # every page answered once
    first = fake.requests[0]
    assert first["filter.advanced"] == "AREA[LastUpdatePostDate]RANGE[2024-01-01,MAX]"
    assert first["pageSize"] == "1000" and first["countTotal"] == "true"
    assert all("countTotal" not in r for r in fake.requests if "pageToken" in r)
    # raw keeps the exact bytes received, and every study lands once
    for i, rel in enumerate(report.files):
        assert (landing / rel).read_bytes() == fake.page_body(i, i == 0)
    summary = ingest_landing(con, landing)
    assert summary.files_failed == 0
    ids = {r[0] for r in con.execute("SELECT nct_id FROM raw.ctgov_study_version").fetchall()}
    assert ids == fake.study_ids()
    assert con.execute("SELECT count(*) = count(DISTINCT nct_id) FROM raw.ctgov_study_version").fetchone()[0]


def test_watermark_advances_and_next_sync_starts_from_it(tmp_path):
    landing = tmp_path / "landing"
    with FakeCtgov(page_files=["page_cyanheads_pagesize1.json"]) as fake:
        sync(landing, client(fake), since="2020-01-01")
        state = SyncState.load(landing / ".ctgov_sync" / "state.json")
        page_dates = [s["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] for s in fake.pages[0]["studies"]]
        assert state.watermark == max(page_dates) and state.sync_id is None
        sync(landing, client(fake))
        assert fake.requests[-1]["filter.advanced"] == f"AREA[LastUpdatePostDate]RANGE[{max(page_dates)},MAX]"


def test_gives_up_with_a_clear_error_and_resumes_later(tmp_path):
    landing = tmp_path / "landing"
    with FakeCtgov(faults={2: "500", 3: "500", 4: "500"}) as fake:
        with pytest.raises(SyncError, match="after 3 attempts: HTTP 500") as failed:
            sync(landing, client(fake, max_attempts=3), since="2024-01-01")
        # the whole URL, host included: a wrong --base-url read "GET /studies failed" (a newcomer's walkthrough)
        assert str(failed.value).startswith(f"GET {fake.base_url}/studies?")
        report = sync(landing, client(fake))
    assert report.completed and report.pages == 4  # page 1 was already done
    assert sorted(fake.served) == [0, 1, 2, 3, 4]


def test_killed_sync_resumes_from_its_checkpoint(tmp_path):
    landing = tmp_path / "landing"
    with FakeCtgov(faults={3: "slow"}, slow_seconds=30) as fake:
        env = dict(os.environ, TRIALHOUSE_LANDING=str(landing))
        proc = subprocess.Popen([sys.executable, "-m", "trialhouse.cli", "sync-ctgov", "--base-url", fake.base_url,
                                 "--since", "2024-01-01", "--min-interval", "0"], env=env)
        deadline = time.time() + 60
        while len(fake.requests) < 3 and time.time() < deadline:
            time.sleep(0.05)
        assert len(fake.requests) >= 3, "the sync never reached its third page"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        state = SyncState.load(landing / ".ctgov_sync" / "state.json")
        assert state.sync_id and state.pages_done == 2 and state.page_token == "tok2"
        report = sync(landing, client(fake))
    assert report.completed and report.pages == 3 and report.sync_id == state.sync_id
    pages = sorted(p.name for p in (landing / "ctgov" / "api" / state.sync_id).glob("page-*.json"))
    assert pages == [f"page-{i:05d}.json" for i in range(1, 6)]
    assert [r.get("pageToken") for r in fake.requests].count(None) == 1  # never restarted from zero


def test_pacing_keeps_one_request_per_interval(tmp_path):
    slept = []
    with FakeCtgov(page_files=["page_cyanheads_pagesize1.json", "page_cyanheads_pagesize2.json"]) as fake:
        c = CtgovClient(fake.base_url, min_interval=1.0, sleep=slept.append, clock=lambda: 100.0)
        sync(tmp_path / "landing", c)
    assert slept == [1.0]  # the second request waited a full interval


def _mock_client(pages: list[dict], seen: list):
    import httpx

    def handler(request):
        seen.append(dict(request.url.params))
        return httpx.Response(200, json=pages[min(len(seen), len(pages)) - 1])

    return CtgovClient("http://fake/api/v2", min_interval=0, transport=httpx.MockTransport(handler))


def _study(nct_id: str, date):
    return {"protocolSection": {"identificationModule": {"nctId": nct_id},
                                "statusModule": {"lastUpdatePostDateStruct": {"date": date}}}}


def test_a_study_dated_ahead_of_the_run_does_not_move_the_watermark_past_every_real_update(tmp_path):
    """The registry gate holds a study posted in 2099; the sync had moved its watermark there, so each
    later sync asked only for studies updated since 2099."""
    landing, seen = tmp_path / "landing", []
    page = {"studies": [_study("NCT01000001", "2025-01-10"), _study("NCT01000002", "2099-01-01"),
                        _study("NCT01000003", "2025-13-45"), _study("NCT01000004", 20250111)]}
    report = sync(landing, _mock_client([page], seen), since="2025-01-01")
    assert report.completed and report.watermark == "2025-01-10"
    sync(landing, _mock_client([page], seen))
    assert seen[-1]["filter.advanced"] == "AREA[LastUpdatePostDate]RANGE[2025-01-10,MAX]"


def test_an_entry_that_is_not_a_study_is_landed_for_ingestion_to_hold_not_a_stalled_sync(tmp_path, con):
    landing, seen = tmp_path / "landing", []
    page = {"studies": [None, _study("NCT01000001", "2025-01-10"), "text"]}
    report = sync(landing, _mock_client([page], seen), since="2025-01-01")
    assert report.completed and report.studies == 3 and report.watermark == "2025-01-10"
    summary = ingest_landing(con, landing)
    assert summary.records_quarantined == 2 and summary.new_versions == 1


def test_a_page_that_is_not_an_api_page_stops_the_sync_with_its_reason(tmp_path):
    landing, seen = tmp_path / "landing", []
    with pytest.raises(SyncError, match="is a JSON list, not an API page"):
        sync(landing, _mock_client([[_study("NCT01000001", "2025-01-10")]], seen), since="2025-01-01")


def test_a_different_since_starts_a_new_sync_instead_of_resending_the_stuck_one(tmp_path):
    """A date the API refused was checkpointed with its sync, and every later sync, given another
    --since or none, resent it and failed the same way (newcomer's review)."""
    landing = tmp_path / "landing"
    with FakeCtgov(faults={1: "500", 2: "500"}) as fake:
        with pytest.raises(SyncError):
            sync(landing, client(fake, max_attempts=2), since="2024-01-01")
        stuck = SyncState.load(landing / ".ctgov_sync" / "state.json").sync_id
        report = sync(landing, client(fake), since="2024-06-01")
    assert report.completed and report.sync_id != stuck
    assert fake.requests[-report.pages]["filter.advanced"] == "AREA[LastUpdatePostDate]RANGE[2024-06-01,MAX]"


def test_a_sync_checkpointed_with_a_date_that_is_not_one_starts_over(tmp_path):
    landing = tmp_path / "landing"
    SyncState(watermark="2024-02-01", sync_id="old", since="2024-13-45", pages_done=1,
              page_token="t").save(landing / ".ctgov_sync" / "state.json")
    with FakeCtgov() as fake:
        report = sync(landing, client(fake))
    assert report.completed and report.sync_id != "old"
    assert fake.requests[0]["filter.advanced"] == "AREA[LastUpdatePostDate]RANGE[2024-02-01,MAX]"


@pytest.mark.parametrize("args, needle", [
    (["--since", "2024-13-45"], "--since '2024-13-45' is not a date YYYY-MM-DD"),
    (["--since", "yesterday"], "--since 'yesterday' is not a date YYYY-MM-DD"),
    (["--base-url", "notaurl"], "base URL 'notaurl' is not an http(s) URL"),
])
def test_sync_arguments_that_cannot_work_are_refused_before_any_request(tmp_path, capsys, args, needle):
    from trialhouse.cli import main

    landing = tmp_path / "landing"
    assert main(["sync-ctgov", "--landing", str(landing), *args]) == 2
    assert needle in capsys.readouterr().err
    assert not (landing / ".ctgov_sync").exists()


def test_each_retry_is_said_as_it_happens(tmp_path, capsys):
    """An unreachable host retried for ~109 s with nothing on the terminal (newcomer's review)."""
    from trialhouse.cli import main

    with FakeCtgov(faults={1: "500", 2: "500"}) as fake:
        code = main(["sync-ctgov", "--landing", str(tmp_path / "landing"), "--base-url", fake.base_url,
                     "--since", "2024-01-01", "--min-interval", "0"])
    err = capsys.readouterr().err
    assert code == 0
    assert "sync-ctgov: HTTP 500; attempt 1 of 8 failed, trying again in" in err
    assert "attempt 2 of 8 failed" in err
