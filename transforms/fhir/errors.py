"""Errors raised while mapping a registry record to FHIR.

A record that cannot be mapped must be quarantined with a reason an analyst can act on,
so the error names the JSON path of the offending field rather than a Python traceback.
"""

from __future__ import annotations


class MappingError(ValueError):
    """A ClinicalTrials.gov record that cannot be mapped; `field` is the JSON path at fault."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def __reduce__(self):  # keep picklable for multiprocessing workers
        return (type(self), (self.field, self.message))
