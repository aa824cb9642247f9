"""Shared fixtures: real ClinicalTrials.gov records copied from ../shared/ctgov into tests/data."""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

DATA = Path(__file__).resolve().parent / "data"
CTGOV = DATA / "ctgov"


def study_files() -> list[Path]:
    return sorted(CTGOV.glob("NCT*.json"))


def page_files() -> list[Path]:
    return sorted((CTGOV / "pages").glob("*.json"))


def version_files() -> list[Path]:
    return sorted((CTGOV / "versions").glob("*.json"))


def land_every_real_record(ctgov: Path) -> None:
    """Every real study, older version and API page into a landing `ctgov/` folder (pages renamed
    so they do not shadow the single-study files of the same name)."""
    ctgov.mkdir(parents=True, exist_ok=True)
    for p in study_files() + version_files():
        (ctgov / p.name).write_bytes(p.read_bytes())
    for p in page_files():
        (ctgov / f"page-{p.name}").write_bytes(p.read_bytes())


class Landing:
    """A temporary landing folder that tests drop real files into."""

    def __init__(self, root: Path):
        self.root = root
        (root / "ctgov").mkdir(parents=True, exist_ok=True)

    def drop(self, src: Path, name: str | None = None, subdir: str = "") -> Path:
        dest = self.root / "ctgov" / subdir / (name or src.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return dest

    def write(self, name: str, data: bytes | str) -> Path:
        dest = self.root / "ctgov" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data.encode() if isinstance(data, str) else data)
        return dest


class Counting:
    """A connection that records the statements run through it: a scan's cost in statements must not
    grow with what earlier runs processed."""

    def __init__(self, con):
        self.con, self.statements = con, []

    def execute(self, sql, *args):
        self.statements.append(sql)
        return self.con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.con, name)


@pytest.fixture
def landing(tmp_path) -> Landing:
    return Landing(tmp_path / "landing")


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield c
    c.close()
