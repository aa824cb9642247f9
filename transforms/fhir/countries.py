"""Country names as ClinicalTrials.gov writes them -> ISO 3166-1 alpha-2.

The registry stores free country names (and renamed some over time: 'Czech Republic' became
'Czechia', 'Turkey' became 'Turkey (Türkiye)', 'Russian Federation' is also 'Russia'), while
ResearchStudy.region is bound to ISO 3166 codes. Each line lists the code, the ISO short name,
then the other spellings seen in registry records. Matching ignores case, accents and punctuation.
Withdrawn codes the registry still uses for historic sites are kept (AN, CS, YU).
"""

from __future__ import annotations

from .ids import normalise

_TABLE = """\
AD|Andorra
AE|United Arab Emirates
AF|Afghanistan
AG|Antigua and Barbuda
AI|Anguilla
AL|Albania
AM|Armenia
AN|Netherlands Antilles
AO|Angola
AQ|Antarctica
AR|Argentina
AS|American Samoa
AT|Austria
AU|Australia
AW|Aruba
AX|Åland Islands|Aland Islands
AZ|Azerbaijan
BA|Bosnia and Herzegovina
BB|Barbados
BD|Bangladesh
BE|Belgium
BF|Burkina Faso
BG|Bulgaria
BH|Bahrain
BI|Burundi
BJ|Benin
BL|Saint Barthélemy
BM|Bermuda
BN|Brunei Darussalam|Brunei
BO|Bolivia|Bolivia, Plurinational State of
BQ|Bonaire, Sint Eustatius and Saba
BR|Brazil
BS|Bahamas
BT|Bhutan
BV|Bouvet Island
BW|Botswana
BY|Belarus
BZ|Belize
CA|Canada
CC|Cocos (Keeling) Islands
CD|Congo, The Democratic Republic of the|Democratic Republic of the Congo|Congo, Democratic Republic of the|Zaire
CF|Central African Republic
CG|Congo|Republic of the Congo
CH|Switzerland
CI|Côte d'Ivoire|Cote D'Ivoire|Ivory Coast
CK|Cook Islands
CL|Chile
CM|Cameroon
CN|China
CO|Colombia
CR|Costa Rica
CS|Former Serbia and Montenegro|Serbia and Montenegro
CU|Cuba
CV|Cabo Verde|Cape Verde
CW|Curaçao|Curacao
CX|Christmas Island
CY|Cyprus
CZ|Czechia|Czech Republic
DE|Germany
DJ|Djibouti
DK|Denmark
DM|Dominica
DO|Dominican Republic
DZ|Algeria
EC|Ecuador
EE|Estonia
EG|Egypt
EH|Western Sahara
ER|Eritrea
ES|Spain
ET|Ethiopia
FI|Finland
FJ|Fiji
FK|Falkland Islands (Malvinas)|Falkland Islands
FM|Micronesia, Federated States of|Micronesia
FO|Faroe Islands
FR|France
GA|Gabon
GB|United Kingdom|Great Britain|England|Scotland|Wales|Northern Ireland
GD|Grenada
GE|Georgia
GF|French Guiana
GG|Guernsey
GH|Ghana
GI|Gibraltar
GL|Greenland
GM|Gambia|The Gambia
GN|Guinea
GP|Guadeloupe
GQ|Equatorial Guinea
GR|Greece
GS|South Georgia and the South Sandwich Islands
GT|Guatemala
GU|Guam
GW|Guinea-Bissau
GY|Guyana
HK|Hong Kong
HM|Heard Island and McDonald Islands
HN|Honduras
HR|Croatia
HT|Haiti
HU|Hungary
ID|Indonesia
IE|Ireland
IL|Israel
IM|Isle of Man
IN|India
IO|British Indian Ocean Territory
IQ|Iraq
IR|Iran, Islamic Republic of|Iran
IS|Iceland
IT|Italy
JE|Jersey
JM|Jamaica
JO|Jordan
JP|Japan
KE|Kenya
KG|Kyrgyzstan
KH|Cambodia
KI|Kiribati
KM|Comoros
KN|Saint Kitts and Nevis
KP|Korea, Democratic People's Republic of|North Korea
KR|Korea, Republic of|South Korea|Republic of Korea|Korea
KW|Kuwait
KY|Cayman Islands
KZ|Kazakhstan
LA|Lao People's Democratic Republic|Laos
LB|Lebanon
LC|Saint Lucia
LI|Liechtenstein
LK|Sri Lanka
LR|Liberia
LS|Lesotho
LT|Lithuania
LU|Luxembourg
LV|Latvia
LY|Libya|Libyan Arab Jamahiriya
MA|Morocco
MC|Monaco
MD|Moldova, Republic of|Moldova|Republic of Moldova
ME|Montenegro
MF|Saint Martin (French part)|Saint Martin
MG|Madagascar
MH|Marshall Islands
MK|North Macedonia|Macedonia, The Former Yugoslav Republic of|Macedonia|Republic of North Macedonia
ML|Mali
MM|Myanmar|Burma
MN|Mongolia
MO|Macao|Macau
MP|Northern Mariana Islands
MQ|Martinique
MR|Mauritania
MS|Montserrat
MT|Malta
MU|Mauritius
MV|Maldives
MW|Malawi
MX|Mexico
MY|Malaysia
MZ|Mozambique
NA|Namibia
NC|New Caledonia
NE|Niger
NF|Norfolk Island
NG|Nigeria
NI|Nicaragua
NL|Netherlands|The Netherlands
NO|Norway
NP|Nepal
NR|Nauru
NU|Niue
NZ|New Zealand
OM|Oman
PA|Panama
PE|Peru
PF|French Polynesia
PG|Papua New Guinea
PH|Philippines
PK|Pakistan
PL|Poland
PM|Saint Pierre and Miquelon
PN|Pitcairn
PR|Puerto Rico
PS|Palestine, State of|Palestinian Territory, occupied|Palestinian Territories|Palestine
PT|Portugal
PW|Palau
PY|Paraguay
QA|Qatar
RE|Réunion|Reunion
RO|Romania
RS|Serbia
RU|Russian Federation|Russia
RW|Rwanda
SA|Saudi Arabia
SB|Solomon Islands
SC|Seychelles
SD|Sudan
SE|Sweden
SG|Singapore
SH|Saint Helena, Ascension and Tristan da Cunha|Saint Helena
SI|Slovenia
SJ|Svalbard and Jan Mayen
SK|Slovakia
SL|Sierra Leone
SM|San Marino
SN|Senegal
SO|Somalia
SR|Suriname
SS|South Sudan
ST|Sao Tome and Principe
SV|El Salvador
SX|Sint Maarten (Dutch part)|Sint Maarten
SY|Syrian Arab Republic|Syria
SZ|Eswatini|Swaziland
TC|Turks and Caicos Islands
TD|Chad
TF|French Southern Territories
TG|Togo
TH|Thailand
TJ|Tajikistan
TK|Tokelau
TL|Timor-Leste|East Timor
TM|Turkmenistan
TN|Tunisia
TO|Tonga
TR|Türkiye|Turkey (Türkiye)|Turkey
TT|Trinidad and Tobago
TV|Tuvalu
TW|Taiwan|Taiwan, Province of China
TZ|Tanzania, United Republic of|Tanzania|United Republic of Tanzania
UA|Ukraine
UG|Uganda
UM|United States Minor Outlying Islands
US|United States|United States of America|USA
UY|Uruguay
UZ|Uzbekistan
VA|Holy See (Vatican City State)|Vatican City|Holy See
VC|Saint Vincent and the Grenadines
VE|Venezuela|Venezuela, Bolivarian Republic of
VG|Virgin Islands, British|British Virgin Islands
VI|Virgin Islands (U.S.)|Virgin Islands, U.S.|US Virgin Islands
VN|Vietnam|Viet Nam
VU|Vanuatu
WF|Wallis and Futuna
WS|Samoa
XK|Kosovo
YE|Yemen
YT|Mayotte
YU|Yugoslavia
ZA|South Africa
ZM|Zambia
ZW|Zimbabwe
"""


def _build() -> tuple[dict[str, str], dict[str, str]]:
    by_name: dict[str, str] = {}
    names: dict[str, str] = {}
    for line in _TABLE.splitlines():
        code, *spellings = line.split("|")
        names[code] = spellings[0]
        for s in spellings:
            by_name[normalise(s)] = code
    return by_name, names


_BY_NAME, ISO_NAMES = _build()
ISO_CODES = frozenset(ISO_NAMES)


def iso_alpha2(name: str | None) -> str | None:
    """ISO 3166-1 alpha-2 code of a registry country name, or None when the name is unknown."""
    if not name:
        return None
    return _BY_NAME.get(normalise(name))
