"""Suite `ctgov_registry`: what a ClinicalTrials.gov registration record must satisfy before it is
mapped. Enum value sets come from the registry contract (schemas/ctgov), keyed by the enum type the
API metadata names for each field, so a field and its allowed values cannot drift apart."""
from __future__ import annotations

import datetime as dt

from expectations.runtime import Rule
from schemas.ctgov.contract import enum_type_of, enums, known_sections
from transforms.ctgov.flatten import POSTED_DATES, REQUIRED_MODULES, STUDY_FIELDS

SUITE = "ctgov_registry"
NCT_ID_FIELD = "protocolSection.identificationModule.nctId"
# Partial dates are valid (2004-05); months and days are checked for range here and for the calendar below.
DATE_REGEX = r"^\d{4}(?:-(?:0[1-9]|1[0-2])(?:-(?:0[1-9]|[12]\d|3[01]))?)?$"
# A real calendar date: YYYY or YYYY-MM, or a day that month has (29 February only in leap years),
# year 0000 excluded. Checked by regex, vectorised: dateutil parsed each value in Python, 0.55 ms a
# study at 50,000 studies, a third of the suite's time; tests hold the regex to dateutil's verdicts.
CALENDAR_REGEX = (
    r"^(?!0000)(?:\d{4}(?:-(?:0[1-9]|1[0-2]))?"
    r"|\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)|02-(?:0[1-9]|1\d|2[0-8]))"
    r"|(?:\d{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)$"
)
DATE_COLUMNS = ("start_date", "primary_completion_date", "completion_date", "study_first_submit_date",
                "last_update_post_date")
REQUIRED_VALUES = ("brief_title", "overall_status", "study_type")
LONG_ENUMS = {  # frame, column, contract path
    ("phase", "phase"): "protocolSection.designModule.phases",
    ("site", "status"): "protocolSection.contactsLocationsModule.locations.status",
    ("arm", "type"): "protocolSection.armsInterventionsModule.armGroups.type",
    ("intervention", "type"): "protocolSection.armsInterventionsModule.interventions.type",
}


def _in_set(frame: str, column: str, field: str, values: list[str], rule_id: str) -> Rule:
    return Rule(rule_id, frame, column, field,
                lambda g, c=column, v=values: g.expectations.ExpectColumnValuesToBeInSet(column=c, value_set=v),
                message=f"is not one of the allowed values ({', '.join(values[:8])}{', ...' if len(values) > 8 else ''})")


def rules(intervention_refs: frozenset[str] = frozenset(), today: dt.date | None = None) -> list[Rule]:
    """`intervention_refs`: every intervention of the batch, as arms name them (see flatten.intervention_ref).
    `today`: the run's date (UTC) posted dates may not lie beyond, by more than a day (as DQD's date
    plausibility: the registry dates in US Eastern time)."""
    e = enums()
    latest = (today or dt.datetime.now(dt.timezone.utc).date()) + dt.timedelta(days=1)
    out = [
        Rule("nct_id_pattern", "study", "nct_id", NCT_ID_FIELD,
             lambda g: g.expectations.ExpectColumnValuesToMatchRegex(column="nct_id", regex=r"^NCT\d{8}$"),
             message="is not 'NCT' followed by 8 digits"),
        Rule("one_current_version_per_study", "study", "nct_id", NCT_ID_FIELD,
             lambda g: g.expectations.ExpectColumnValuesToBeUnique(column="nct_id"),
             message="appears more than once in this batch with different content and the same "
                     "lastUpdatePostDate/versionHolder: which one is current is ambiguous"),
        Rule("no_unknown_sections", "section", "section", "section",
             lambda g: g.expectations.ExpectColumnValuesToBeInSet(column="section", value_set=sorted(known_sections())),
             level="batch", message="is a section or module the API v2 metadata does not define (schema drift)"),
    ]
    for module in REQUIRED_MODULES:
        out.append(Rule(f"required_module.{module}", "study", f"has_{module}", f"protocolSection.{module}",
                        lambda g, c=f"has_{module}": g.expectations.ExpectColumnValuesToBeInSet(column=c, value_set=[True]),
                        message="is missing (required module)"))
    for column in REQUIRED_VALUES:
        out.append(Rule(f"required_value.{column}", "study", column, STUDY_FIELDS[column],
                        lambda g, c=column: g.expectations.ExpectColumnValuesToNotBeNull(column=c),
                        message="is missing (required field)"))
        # "" or spaces passed as present: FHIR left the title out (an empty string is no FHIR value),
        # OMOP kept '' (a fuzzing review)
        out.append(Rule(f"not_blank.{column}", "study", column, STUDY_FIELDS[column],
                        lambda g, c=column: g.expectations.ExpectColumnValuesToMatchRegex(column=c, regex=r"\S"),
                        message="is blank (required field)"))
    for column, path in STUDY_FIELDS.items():
        enum_type = enum_type_of(path)
        if enum_type:
            out.append(_in_set("study", column, path, e[enum_type], f"enum.{column}"))
    for (frame, column), path in LONG_ENUMS.items():
        enum_type = enum_type_of(path)
        out.append(_in_set(frame, column, path, e[enum_type], f"enum.{frame}_{column}"))
    for column in DATE_COLUMNS:
        out.append(Rule(f"date_format.{column}", "study", column, STUDY_FIELDS[column],
                        lambda g, c=column: g.expectations.ExpectColumnValuesToMatchRegex(column=c, regex=DATE_REGEX),
                        message="is not a date of the form YYYY, YYYY-MM or YYYY-MM-DD"))
        out.append(Rule(f"date_calendar.{column}", "study", column, STUDY_FIELDS[column],
                        lambda g, c=column: g.expectations.ExpectColumnValuesToMatchRegex(column=c, regex=CALENDAR_REGEX),
                        message="is not a real calendar date"))
    for column in POSTED_DATES:
        out.append(Rule(f"not_future.{column}", "study", f"{column}_day", STUDY_FIELDS[column],
                        lambda g, c=f"{column}_day": g.expectations.ExpectColumnValuesToBeBetween(column=c, max_value=latest),
                        message=f"lies ahead of the run (after {latest.isoformat()}): the registry posts these dates"))
    out += [
        Rule("json_shape", "shape", "found", "$",
             lambda g: g.expectations.ExpectColumnValuesToBeNull(column="found"),
             message="is not the JSON type the registry's API v2 gives this field, so the record cannot be flattened"),
        Rule("enrollment_non_negative", "study", "enrollment_count", STUDY_FIELDS["enrollment_count"],
             lambda g: g.expectations.ExpectColumnValuesToBeBetween(column="enrollment_count", min_value=0),
             message="is negative or not a number"),
        Rule("arm_intervention_resolves", "arm_intervention", "ref", "interventionNames",
             lambda g: g.expectations.ExpectColumnValuesToBeInSet(column="ref", value_set=sorted(intervention_refs)),
             message="names an intervention the record does not list in armsInterventionsModule.interventions"),
        Rule("site_latitude_range", "site", "latitude", "geoPoint.lat",
             lambda g: g.expectations.ExpectColumnValuesToBeBetween(column="latitude", min_value=-90, max_value=90),
             message="is outside -90..90"),
        Rule("site_longitude_range", "site", "longitude", "geoPoint.lon",
             lambda g: g.expectations.ExpectColumnValuesToBeBetween(column="longitude", min_value=-180, max_value=180),
             message="is outside -180..180"),
    ]
    return out
