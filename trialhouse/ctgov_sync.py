"""Incremental ClinicalTrials.gov API v2 sync: GET /api/v2/studies pages landed as files.

Every page is written as received (bytes untouched) to `<landing>/ctgov/api/<sync id>/page-NNNNN.json`,
via a `.partial` name and an atomic rename, so raw ingestion keeps the exact bytes and never reads
half a page. Progress (watermark, page token, pages done) is checkpointed in
`<landing>/.ctgov_sync/state.json` after every page: a crash resumes from the last page, and a
page fetched twice lands twice with the same bytes, which raw registers once by sha256.

Politeness: at most one request per `min_interval` seconds (1 s by default; the API publishes no
rate limit), retries with exponential backoff and full jitter on 429, 5xx, timeouts and dropped
connections, honouring Retry-After.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from transforms.ctgov.identity import LAST_UPDATE_FIELD, get_path

DEFAULT_BASE_URL = "https://clinicaltrials.gov/api/v2"
PAGE_SIZE = 1000
RETRY_STATUS = {429, 500, 502, 503, 504}


class SyncError(Exception):
    pass


@dataclass
class SyncState:
    watermark: str | None = None  # last-update-post-date (YYYY-MM-DD) the next sync starts from
    sync_id: str | None = None  # set while a sync is in progress
    since: str | None = None
    page_token: str | None = None
    pages_done: int = 0
    studies_seen: int = 0
    max_last_update: str | None = None
    total_count: int | None = None

    @classmethod
    def load(cls, path: Path) -> "SyncState":
        if not path.exists():
            return cls()
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        tmp.write_text(json.dumps(self.__dict__, indent=2), encoding="utf-8")
        os.replace(tmp, path)


@dataclass
class SyncReport:
    sync_id: str
    since: str | None
    pages: int = 0
    studies: int = 0
    retries: int = 0
    total_count: int | None = None
    completed: bool = False
    watermark: str | None = None
    files: list[str] = field(default_factory=list)


class CtgovClient:
    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, min_interval: float = 1.0, timeout: float = 60.0,
                 max_attempts: int = 8, backoff_base: float = 1.0, backoff_cap: float = 60.0,
                 transport: httpx.BaseTransport | None = None, sleep=time.sleep, clock=time.monotonic,
                 on_retry=None):
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
                                 headers={"Accept": "application/json", "User-Agent": "trialhouse-sync/0.1"})
        self.min_interval, self.max_attempts = min_interval, max_attempts
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.sleep, self.clock = sleep, clock
        self._last_request: float | None = None
        self.retries = 0
        # told (attempt, max_attempts, error, delay) before each wait: an unreachable host retried for
        # ~109 s with nothing said
        self.on_retry = on_retry

    def close(self) -> None:
        self.http.close()

    def _pace(self) -> None:
        if self._last_request is not None:
            wait = self.min_interval - (self.clock() - self._last_request)
            if wait > 0:
                self.sleep(wait)
        self._last_request = self.clock()

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.backoff_cap)
            except ValueError:
                pass
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** attempt))

    def get_page(self, params: dict) -> bytes:
        """One page, retried on transient failures; returns the body exactly as received."""
        last_error = "no attempt made"
        for attempt in range(self.max_attempts):
            self._pace()
            retry_after = None
            try:
                resp = self.http.get("/studies", params=params)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 200:
                    return resp.content
                if resp.status_code not in RETRY_STATUS:
                    raise SyncError(f"GET {resp.request.url} answered {resp.status_code}: {resp.text[:300]}")
                last_error = f"HTTP {resp.status_code}"
                retry_after = resp.headers.get("Retry-After")
            self.retries += 1
            delay = self._backoff(attempt, retry_after)
            if self.on_retry is not None and attempt + 1 < self.max_attempts:
                self.on_retry(attempt + 1, self.max_attempts, last_error, delay)
            self.sleep(delay)
        # the whole URL: a wrong --base-url showed as "GET /studies", which names no host
        url = self.http.build_request("GET", "/studies", params=params).url
        raise SyncError(f"GET {url} failed after {self.max_attempts} attempts: {last_error}")


def _params(since: str | None, page_token: str | None, first: bool) -> dict:
    p = {"format": "json", "pageSize": PAGE_SIZE}
    if since:
        p["filter.advanced"] = f"AREA[LastUpdatePostDate]RANGE[{since},MAX]"
    if first:
        p["countTotal"] = "true"
    if page_token:
        p["pageToken"] = page_token
    return p


def _is_date(text: str | None) -> bool:
    if text is None:
        return True  # no watermark yet: the whole registry
    try:
        since_date(text)
        return True
    except ValueError:
        return False


def _page_dates(page: dict, latest: dt.date) -> list[str]:
    """The page's lastUpdatePostDates the watermark may move to: real dates, none after `latest`.

    One study dated 2099 (the registry gate holds it) moved the watermark there, and every later sync
    asked only for studies updated since 2099: every real update was skipped, silently. Entries that
    are not studies (a null in `studies`) are ingestion's to hold, not the sync's to stop on."""
    out = []
    for s in page.get("studies") or []:
        node = get_path(s, LAST_UPDATE_FIELD)
        if not isinstance(node, str) or len(node) != 10:
            continue
        try:
            day = dt.date.fromisoformat(node)
        except ValueError:
            continue
        if day <= latest:
            out.append(node)
    return out


def since_date(text: str) -> str:
    """`since` as the API's date (YYYY-MM-DD), or ValueError naming what is wrong with it."""
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise ValueError(f"--since {text!r} is not a date YYYY-MM-DD")


def sync(landing: Path, client: CtgovClient, *, since: str | None = None, max_pages: int | None = None) -> SyncReport:
    """Fetch pages since the watermark (or `since`), resuming an interrupted sync first.

    A `since` other than the interrupted sync's starts a new sync instead (the pages already landed
    stay): a mistyped date the API refused was checkpointed with the sync, and every later sync, with
    or without `since`, resent it and failed the same way until the state file was deleted by hand.
    An interrupted sync whose own date is not one (checkpointed so by an earlier version) starts over."""
    if since is not None:
        since = since_date(since)
    state_path = landing / ".ctgov_sync" / "state.json"
    state = SyncState.load(state_path)
    if state.sync_id is not None and ((since is not None and since != state.since) or not _is_date(state.since)):
        state.sync_id = None
    if state.sync_id is None:  # start a new sync
        state.sync_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
        state.since = since or state.watermark
        state.page_token, state.pages_done, state.studies_seen = None, 0, 0
        state.max_last_update, state.total_count = None, None
        state.save(state_path)
    report = SyncReport(state.sync_id, state.since, total_count=state.total_count)
    out_dir = landing / "ctgov" / "api" / state.sync_id
    out_dir.mkdir(parents=True, exist_ok=True)
    while max_pages is None or report.pages < max_pages:
        first = state.pages_done == 0
        body = client.get_page(_params(state.since, state.page_token, first))
        try:
            page = json.loads(body)
        except json.JSONDecodeError as exc:
            raise SyncError(f"page {state.pages_done + 1} of sync {state.sync_id} is not JSON: {exc}") from None
        if not isinstance(page, dict):
            raise SyncError(f"page {state.pages_done + 1} of sync {state.sync_id} is a JSON {type(page).__name__}, "
                            "not an API page")
        name = out_dir / f"page-{state.pages_done + 1:05d}.json"
        tmp = name.with_name("." + name.name + ".partial")
        tmp.write_bytes(body)
        os.replace(tmp, name)
        report.files.append(name.relative_to(landing).as_posix())
        # Registry dates are US Eastern: up to a day ahead of UTC's
        dates = _page_dates(page, dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1))
        if dates:
            state.max_last_update = max([state.max_last_update or "", *dates])
        if first and "totalCount" in page:
            state.total_count = page["totalCount"]
        state.pages_done += 1
        studies = page.get("studies") if isinstance(page.get("studies"), list) else []
        state.studies_seen += len(studies)
        state.page_token = page.get("nextPageToken")
        report.pages += 1
        report.studies += len(studies)
        if not state.page_token:  # done: advance the watermark, clear the in-progress sync
            state.watermark = state.max_last_update or state.since or state.watermark
            state.sync_id, state.page_token = None, None
            report.completed, report.watermark = True, state.watermark
            state.save(state_path)
            break
        state.save(state_path)
    report.total_count = state.total_count
    report.retries = client.retries
    return report
