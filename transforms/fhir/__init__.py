"""ClinicalTrials.gov API v2 study records -> FHIR R5 resources (pure functions, no I/O but the
DuckDB connection handed to `store`/`export`)."""

from .errors import MappingError
from .research_study import map_study

__all__ = ["MappingError", "map_study"]
