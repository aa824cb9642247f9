"""The registry suite's calendar rule is a regex GX evaluates vectorised; it must judge every date of
the registry's format exactly as dateutil (which it replaced for speed) does."""
import datetime as dt
import re

import pandas as pd
from dateutil import parser as dateutil_parser

from expectations.runtime import GxRunner
from expectations.suites.ctgov_registry import DATE_REGEX, SUITE, rules

TRICKY = [
    "2024-02-29", "2000-02-29", "1600-02-29", "2096-02-29",  # leap days
    "2023-02-29", "1900-02-29", "2100-02-29", "2025-02-30",  # no such day
    "2025-04-30", "2025-04-31", "2025-06-31", "2025-09-31", "2025-11-31", "2025-12-31", "2025-01-31",
    "2025-02-28", "2025-05", "2025", "1999-12", "0000-01-01", "0000", "0001-01-01", "9999-12-31",
]


def _dateutil_ok(value: str) -> bool:
    try:
        dateutil_parser.parse(value, default=dt.datetime(1900, 1, 1))
        return True
    except (ValueError, OverflowError):
        return False


def test_calendar_rule_agrees_with_dateutil_on_every_date_of_the_registry_format():
    # every day of a leap and a common year, and a few centuries' Februaries, plus the tricky ones
    values = [f"{y}-{m:02d}-{d:02d}" for y in (2023, 2024) for m in range(1, 13) for d in range(1, 32)]
    values += [f"{y}-02-{d}" for y in range(1596, 2404, 4) for d in (28, 29, 30)] + TRICKY
    values = [v for v in values if re.match(DATE_REGEX, v)]
    frame = pd.DataFrame({"nct_id": [f"row{i}" for i in range(len(values))], "start_date": values})
    rule = [r for r in rules() if r.id == "date_calendar.start_date"]
    result = GxRunner().validate(SUITE, rule, {"study": frame}, key_columns=["nct_id"], docs=False)
    rejected = {u["start_date"] for u in result.results[0].unexpected}
    expected = {v for v in values if not _dateutil_ok(v)}
    assert rejected == expected
    assert {"2023-02-29", "1900-02-29", "2025-04-31", "0000-01-01"} <= rejected
    assert not rejected & {"2024-02-29", "2000-02-29", "2025-05", "2025"}


def test_posted_dates_may_not_lie_beyond_the_day_after_the_run():
    """Only the dates the registry stamps when it posts (first submitted, last update posted): start and
    completion dates are often anticipated. A partial date counts from its first day; the day after
    the run is allowed, as the registry dates in US Eastern time."""
    from transforms.ctgov.flatten import registry_frames

    values = ["2026-11-30", "2026-12-01", "2026-12", "2026-12-02", "2027", "9999-12-31", "2026-02-30", None]
    rows = [{"version_key": i, "nct_id": f"NCT{i:08d}", "source_file": "f", "source_record": "r",
             "record": {"protocolSection": {"statusModule": {"lastUpdatePostDateStruct": {"date": v},
                                                             "startDateStruct": {"date": "2099-01-01"}}}}}
            for i, v in enumerate(values)]
    frames = registry_frames(rows)
    rule = [r for r in rules(today=dt.date(2026, 11, 30)) if r.id.startswith(("not_future.", "date_calendar.start"))]
    result = GxRunner().validate(SUITE, rule, frames, key_columns=["nct_id"], docs=False)
    by_id = {r.rule.id: r for r in result.results}
    held = {values[int(u["nct_id"][3:])] for u in by_id["not_future.last_update_post_date"].unexpected}
    assert held == {"2026-12-02", "2027", "9999-12-31"}  # 2026-02-30 is the calendar rule's
    assert by_id["not_future.study_first_submit_date"].success and by_id["date_calendar.start_date"].success
