"""Whether a participant died, and when, from their SDTM rows: one rule for the gate and FHIR, with
its SQL twin in ``transforms/omop/participants/sql/death.sql`` (a test holds the two together).

SDTM records a death in up to three places: DM (``DTHFL`` = Y, ``DTHDTC``), a DS disposition event
``DSDECOD`` = DEATH (its ``DSSTDTC``), and an AE whose outcome ``AEOUT`` is FATAL (its ``AEENDTC``).
Any one of them says the participant died. The date is taken in that order, DM first: it is the
subject-level value SDTM derives from the others, and OHDSI's trial ETL reads it alone
(ClinicalTrialsWGETL ``docs/death.md``). Among several DS or AE rows the earliest date counts, and
where another source gives that date more precisely, it is taken at that precision (``refine``). The
dates are ISO text of any SDTM precision; comparing them as text is comparing them in time, as long
as only the precision both have is compared (``after``).
"""
from __future__ import annotations

from dataclasses import dataclass

# Where a date comes from, in the order it is taken: (domain, variable holding it, variable, value that marks a death)
SOURCES = (("DM", "DTHDTC", None, None), ("DS", "DSSTDTC", "DSDECOD", "DEATH"), ("AE", "AEENDTC", "AEOUT", "FATAL"))


@dataclass(frozen=True)
class Death:
    dtc: str | None    # the death date as sent (any SDTM precision), or None when no row gives one
    field: str         # where it came from (dm.DTHDTC, ds.DSSTDTC, ae.AEENDTC), or what said "died" without a date
    signal: str        # the first variable that says the participant died, e.g. "dm.DTHFL = 'Y'"


def _text(rec: dict, name: str) -> str | None:
    value = rec.get(name)
    return value.strip() or None if isinstance(value, str) else None


def death_of(rows: dict[str, list[dict]]) -> Death | None:
    """``{domain: [SDTM record, ...]}`` of one participant -> their Death, or None if nothing says they died."""
    dm = (rows.get("DM") or [{}])[0]
    signals: list[str] = []
    if (_text(dm, "DTHFL") or "").upper() == "Y":
        signals.append("dm.DTHFL = 'Y'")
    dates: list[tuple[str, str]] = []   # (earliest date of a source, where), in the sources' order
    every: list[tuple[str, str]] = []   # every date any source gives, and where, for refine()
    for domain, date_var, flag_var, flag in SOURCES:
        found = []
        for rec in _saying_died(rows, domain, flag_var, flag):
            if flag_var is not None:
                signals.append(f"{domain.lower()}.{flag_var} = '{flag}'")
            value = _text(rec, date_var)
            if value:
                found.append(value)
                if flag_var is None:
                    signals.append(f"dm.{date_var} = '{value}'")
        if found:
            dates.append((min(found), f"{domain.lower()}.{date_var}"))
            every += [(v, f"{domain.lower()}.{date_var}") for v in found]
    if not signals:
        return None
    if dates:
        return Death(*refine(dates[0], every), signals[0])
    return Death(None, signals[0].split(" = ")[0], signals[0])


def refine(chosen: tuple[str, str], dates: list[tuple[str, str]]) -> tuple[str, str]:
    """The chosen (date, where), or the same date given more precisely by another source: DM's
    ``2026-02`` with a DS DEATH on ``2026-02-03`` died on the 3rd (data on the 4th is after the death,
    and OMOP's date is not guessed within the month). The most precise such date counts, the earliest
    of equally precise ones; a date that disagrees with the chosen one (is not within it) does not move it."""
    within = [d for d in dates if d[0].startswith(chosen[0])]
    return min(within, key=lambda d: (-len(d[0]), d[0], _ORDER[d[1]])) if within else chosen


_ORDER = {f"{domain.lower()}.{var}": i for i, (domain, var, _, _) in enumerate(SOURCES)}


def death_dates_before(rows: dict[str, list[dict]], death_dtc: str) -> list[tuple[str, dict, str, str]]:
    """(domain, record, variable, value) of each record saying the participant died on a date before
    ``death_dtc``, at the precision both have: sources that disagree with the date taken. Later ones
    are ``dates_after``'s to find; one within the date taken (``2026-02`` for ``2026-02-03``) agrees."""
    out = []
    for domain, date_var, flag_var, flag in SOURCES:
        for rec in _saying_died(rows, domain, flag_var, flag):
            value = _text(rec, date_var)
            if value and after(death_dtc, value):
                out.append((domain, rec, date_var, value))
    return out


def _saying_died(rows: dict[str, list[dict]], domain: str, flag_var: str | None, flag: str | None) -> list[dict]:
    """The domain's records that count as a source of the death: DM's, and DS/AE rows with the value
    that marks a death."""
    recs = rows.get(domain) or []
    return recs if flag_var is None else [r for r in recs if (_text(r, flag_var) or "").upper() == flag]


def after(value: str, death_dtc: str) -> bool:
    """Is the SDTM date ``value`` after the death date, at the precision both have? ``2025-03`` is not
    after ``2025-03-07``, nor ``2025-03-07T10:00`` after ``2025-03-07``."""
    n = min(len(value), len(death_dtc))
    return value[:n] > death_dtc[:n]


def dates_after(rows: dict[str, list[dict]], death_dtc: str) -> list[tuple[str, dict, str, str]]:
    """Every SDTM date of the participant later than their death: (domain, record, variable, value).
    Birth and the death date itself are not events; anything else dated after the death is."""
    out = []
    for domain, records in rows.items():
        for rec in records:
            for name, value in rec.items():
                if (not name.endswith("DTC") or name in ("BRTHDTC", "DTHDTC") or not isinstance(value, str)
                        or not value.strip()):
                    continue
                if after(value.strip(), death_dtc):
                    out.append((domain, rec, name, value.strip()))
    return out
