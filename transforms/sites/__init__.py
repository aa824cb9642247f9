"""Site deliveries (schemas/sites/CONTRACT.md): contract checks and raw ingestion, no Dagster."""
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent / "sql"


def sql_text(name: str) -> str:
    """A statement kept beside the code that runs it, in transforms/sites/sql/."""
    return (SQL_DIR / name).read_text(encoding="utf-8")
