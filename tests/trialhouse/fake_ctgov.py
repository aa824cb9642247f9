"""A local stand-in for the ClinicalTrials.gov API v2 on 127.0.0.1: replays the real pages in
tests/data/ctgov/pages and injects faults (429, 500, slow responses, dropped connections)."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

PAGES = Path(__file__).resolve().parents[1] / "data" / "ctgov" / "pages"
FULL_PAGES = ["page_martinadep_sample.json", "page_cyanheads_pagesize2.json", "page_cyanheads_pagesize1.json",
              "page_kylevogeler_sampleResponse.json", "page_gyxcit_diabetes_100.json"]


class FakeCtgov:
    def __init__(self, faults: dict[int, str] | None = None, slow_seconds: float = 2.0, page_files=FULL_PAGES):
        self.pages = [json.loads((PAGES / f).read_text()) for f in page_files]
        self.faults = dict(faults or {})  # request number (1-based) -> '429' | '500' | 'slow' | 'drop'
        self.slow_seconds = slow_seconds
        self.requests: list[dict] = []
        self.served: list[int] = []  # page index of every 200 answer
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urlparse(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                with fake.lock:
                    fake.requests.append(params)
                    n = len(fake.requests)
                fault = fake.faults.get(n)
                if fault == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fault in ("429", "500"):
                    self.send_response(int(fault))
                    if fault == "429":
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                if fault == "slow":
                    time.sleep(fake.slow_seconds)
                if url.path != "/api/v2/studies":
                    self.send_response(404)
                    self.end_headers()
                    return
                token = params.get("pageToken")
                index = 0 if token is None else int(token.removeprefix("tok"))
                body = fake.page_body(index, params.get("countTotal") == "true")
                with fake.lock:
                    fake.served.append(index)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def page_body(self, index: int, count_total: bool) -> bytes:
        page = dict(self.pages[index])
        page.pop("totalCount", None)
        if count_total:
            page["totalCount"] = self.total_studies()
        if index + 1 < len(self.pages):
            page["nextPageToken"] = f"tok{index + 1}"
        else:
            page.pop("nextPageToken", None)
        return json.dumps(page).encode()

    def total_studies(self) -> int:
        return sum(len(p["studies"]) for p in self.pages)

    def study_ids(self) -> set[str]:
        return {s["protocolSection"]["identificationModule"]["nctId"] for p in self.pages for s in p["studies"]}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v2"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
