"""Code systems and ClinicalTrials.gov enum-to-FHIR code tables.

Identifier and code system choices:

* NCT ids use `http://clinicaltrials.gov`, the URI that HL7 Terminology's NamingSystem
  `ClinicalTrials-Gov` registers for the registry. HL7's own ctgov example writes
  `https://clinicaltrials.gov`; we follow the NamingSystem because that is what other
  systems resolve identifiers against.
* MeSH codes use `http://id.nlm.nih.gov/mesh`, the IRI stem HL7 Terminology records for
  MeSH (its CodeSystem also lists https://www.nlm.nih.gov/mesh and OID 2.16.840.1.113883.6.177).
* The ResearchStudy code systems are the R5 core ones (`http://hl7.org/fhir/research-study-*`),
  the systems of the R5 value sets in the terminology bundle we validate against; HL7's ctgov
  example uses the later terminology.hl7.org copies, which the R5 value sets do not include.
* Not-applicable phase is `n-a`: that is the code in the R5 research-study-phase code system.

An enum value missing from these tables raises MappingError: a new registry value must be
mapped on purpose, not dropped silently.
"""

from __future__ import annotations

from .errors import MappingError
from .terminology import display as _display

CTGOV_SYSTEM = "http://clinicaltrials.gov"
MESH_SYSTEM = "http://id.nlm.nih.gov/mesh"
ISO3166_SYSTEM = "urn:iso:std:iso:3166"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
GENDER_SYSTEM = "http://hl7.org/fhir/administrative-gender"

STATUS_SYSTEM = "http://hl7.org/fhir/research-study-status"
PHASE_SYSTEM = "http://hl7.org/fhir/research-study-phase"
PURPOSE_SYSTEM = "http://hl7.org/fhir/research-study-prim-purp-type"
PARTY_ROLE_SYSTEM = "http://hl7.org/fhir/research-study-party-role"
ARM_TYPE_SYSTEM = "http://hl7.org/fhir/research-study-arm-type"
OBJECTIVE_SYSTEM = "http://hl7.org/fhir/research-study-objective-type"
ORG_TYPE_SYSTEM = "http://hl7.org/fhir/research-study-party-organization-type"
CLASSIFIER_SYSTEM = "http://hl7.org/fhir/research-study-classifiers"
STUDY_DESIGN_SYSTEM = "http://hl7.org/fhir/study-design"
TITLE_TYPE_SYSTEM = "http://hl7.org/fhir/title-type"

# Recruitment status (overallStatus and per-site status) -> research-study-status.
# None: no code fits; the CodeableConcept keeps only the registry text (extensible binding).
STATUS = {
    "ACTIVE_NOT_RECRUITING": "active-but-not-recruiting",
    "COMPLETED": "completed",
    "ENROLLING_BY_INVITATION": "enrolling-by-invitation",
    "NOT_YET_RECRUITING": "not-yet-recruiting",
    "RECRUITING": "recruiting",
    "SUSPENDED": "temporarily-closed-to-accrual",
    "TERMINATED": "terminated",
    "WITHDRAWN": "withdrawn",
    "AVAILABLE": "active",
    "NO_LONGER_AVAILABLE": "closed-to-accrual",
    "TEMPORARILY_NOT_AVAILABLE": "temporarily-closed-to-accrual",
    "APPROVED_FOR_MARKETING": "closed-to-accrual",
    "WITHHELD": None,
    "UNKNOWN": None,
}

# Sorted tuple of designModule.phases -> research-study-phase code.
PHASES = {
    ("NA",): "n-a",
    ("EARLY_PHASE1",): "early-phase-1",
    ("PHASE1",): "phase-1",
    ("PHASE1", "PHASE2"): "phase-1-phase-2",
    ("PHASE2",): "phase-2",
    ("PHASE2", "PHASE3"): "phase-2-phase-3",
    ("PHASE3",): "phase-3",
    ("PHASE4",): "phase-4",
}
KNOWN_PHASES = {"NA", "EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4"}

PURPOSE = {
    "TREATMENT": "treatment",
    "PREVENTION": "prevention",
    "DIAGNOSTIC": "diagnostic",
    "SUPPORTIVE_CARE": "supportive-care",
    "SCREENING": "screening",
    "HEALTH_SERVICES_RESEARCH": "health-services-research",
    "BASIC_SCIENCE": "basic-science",
    "DEVICE_FEASIBILITY": "device-feasibility",
    "ECT": None,
    "OTHER": None,
}

# (label shown in studyDesign.text, {enum: (display, SEVCO code or None)})
STUDY_TYPE = {
    "INTERVENTIONAL": ("Interventional", "SEVCO:01001"),
    "OBSERVATIONAL": ("Observational", "SEVCO:01002"),
    "EXPANDED_ACCESS": ("Expanded Access", "SEVCO:01038"),
}
ALLOCATION = {
    "RANDOMIZED": ("Randomized", "SEVCO:01003"),
    "NON_RANDOMIZED": ("Non-Randomized", "SEVCO:01005"),
    "NA": ("N/A", None),
}
INTERVENTION_MODEL = {
    "SINGLE_GROUP": ("Single Group Assignment", "SEVCO:01016"),
    "PARALLEL": ("Parallel Assignment", "SEVCO:01011"),
    "CROSSOVER": ("Crossover Assignment", "SEVCO:01012"),
    "FACTORIAL": ("Factorial Assignment", None),
    "SEQUENTIAL": ("Sequential Assignment", None),
}
MASKING = {
    "NONE": ("None (Open Label)", None),
    "SINGLE": ("Single", None),
    "DOUBLE": ("Double", None),
    "TRIPLE": ("Triple", None),
    "QUADRUPLE": ("Quadruple", None),
}
WHO_MASKED = {
    "PARTICIPANT": ("Participant", "SEVCO:01060"),
    "CARE_PROVIDER": ("Care Provider", "SEVCO:01061"),
    "INVESTIGATOR": ("Investigator", None),
    "OUTCOMES_ASSESSOR": ("Outcomes Assessor", "SEVCO:01062"),
}
OBSERVATIONAL_MODEL = {
    "COHORT": ("Cohort", None),
    "CASE_CONTROL": ("Case-Control", "SEVCO:01013"),
    "CASE_ONLY": ("Case-Only", None),
    "CASE_CROSSOVER": ("Case-Crossover", None),
    "ECOLOGIC_OR_COMMUNITY": ("Ecologic or Community", "SEVCO:01044"),
    "FAMILY_BASED": ("Family-Based", "SEVCO:01020"),
    "DEFINED_POPULATION": ("Defined Population", "SEVCO:01022"),
    "NATURAL_HISTORY": ("Natural History", None),
    "OTHER": ("Other", None),
}
TIME_PERSPECTIVE = {
    "RETROSPECTIVE": ("Retrospective", None),
    "PROSPECTIVE": ("Prospective", None),
    "CROSS_SECTIONAL": ("Cross-Sectional", "SEVCO:01027"),
    "OTHER": ("Other", None),
}

ARM_TYPE = {
    "EXPERIMENTAL": "experimental",
    "ACTIVE_COMPARATOR": "active-comparator",
    "PLACEBO_COMPARATOR": "placebo-comparator",
    "SHAM_COMPARATOR": "sham-comparator",
    "NO_INTERVENTION": "no-intervention",
    "OTHER": "other-arm-type",
}

INTERVENTION_TYPE = {
    "BEHAVIORAL": "Behavioral",
    "BIOLOGICAL": "Biological",
    "COMBINATION_PRODUCT": "Combination Product",
    "DEVICE": "Device",
    "DIAGNOSTIC_TEST": "Diagnostic Test",
    "DIETARY_SUPPLEMENT": "Dietary Supplement",
    "DRUG": "Drug",
    "GENETIC": "Genetic",
    "PROCEDURE": "Procedure",
    "RADIATION": "Radiation",
    "OTHER": "Other",
}

# Agency class -> research-study-party-organization-type (None: no fitting code).
AGENCY_CLASS = {
    "NIH": "nih",
    "FED": "government",
    "OTHER_GOV": "government",
    "INDUSTRY": "industry",
    "INDIV": None,
    "NETWORK": None,
    "AMBIG": None,
    "OTHER": None,
    "UNKNOWN": None,
}

OFFICIAL_ROLE = {
    "PRINCIPAL_INVESTIGATOR": "primary-investigator",
    "SUB_INVESTIGATOR": "sub-investigator",
    "STUDY_DIRECTOR": "study-director",
    "STUDY_CHAIR": "study-chair",
}

RESPONSIBLE_PARTY = {"SPONSOR", "PRINCIPAL_INVESTIGATOR", "SPONSOR_INVESTIGATOR"}
ENROLLMENT_TYPE = {"ACTUAL", "ESTIMATED"}
DATE_TYPE = {"ACTUAL", "ESTIMATED"}
SEX = {"FEMALE": "female", "MALE": "male", "ALL": None}
REFERENCE_TYPE = {"BACKGROUND", "RESULT", "DERIVED"}

# NormalizedTime units -> UCUM.
AGE_UNITS = {
    "year": "a", "years": "a",
    "month": "mo", "months": "mo",
    "week": "wk", "weeks": "wk",
    "day": "d", "days": "d",
    "hour": "h", "hours": "h",
    "minute": "min", "minutes": "min",
}


def lookup(table: dict, value, path: str):
    """Map one enum value or raise MappingError naming the field."""
    try:
        return table[value]
    except (KeyError, TypeError):
        raise MappingError(path, f"unknown value {value!r}") from None


def check(allowed: set, value, path: str):
    if value not in allowed:
        raise MappingError(path, f"unknown value {value!r}")
    return value


def coding(system: str, code: str, display: str | None = None) -> dict:
    c = {"system": system, "code": code}
    display = display or _display(system, code)
    if display:
        c["display"] = display
    return c


def concept(system: str | None, code: str | None, text: str | None = None, display: str | None = None) -> dict:
    """CodeableConcept with the registry's own wording kept as text, coded when a code fits."""
    cc: dict = {}
    if system and code:
        cc["coding"] = [coding(system, code, display)]
    if text:
        cc["text"] = text
    return cc
