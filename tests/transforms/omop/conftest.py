"""Fixtures from tests/raw_fixtures.py (real records in a temp raw layer)."""
from tests.raw_fixtures import mapped_con, raw_con, raw_helpers  # noqa: F401
