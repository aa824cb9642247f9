"""Sites: one Location per facility plus a per-site ResearchStudy that keeps its recruitment status.

R5 has no per-site status on ResearchStudy.site, so we follow HL7's ctgov example: the study's
`site` points at a small ResearchStudy per site (`partOf` the study) whose `site` is the
Location and whose `progressStatus` is the site's recruitment status. Unlike the example these
are standalone resources, not contained ones, so the site views can query them and the same
Location (same facility, city, state, zip, country) is shared by every study that uses it.
"""

from __future__ import annotations

from . import vocab
from .context import StudyContext
from .countries import ISO_NAMES, iso_alpha2
from .ids import digest, location_id

_PATH = "protocolSection.contactsLocationsModule.locations"


def _location(site: dict) -> dict:
    facility = (site.get("facility") or "").strip()
    parts = [site.get(k) or "" for k in ("city", "state", "zip", "country")]
    res: dict = {"resourceType": "Location", "id": location_id(facility, *parts), "status": "active", "mode": "instance"}
    name = facility or ", ".join(p for p in (site.get("city"), site.get("country")) if p)
    if name:
        res["name"] = name
    address = {}
    for src, dst in (("city", "city"), ("state", "state"), ("zip", "postalCode"), ("country", "country")):
        if site.get(src):
            address[dst] = site[src]
    if address:
        res["address"] = address
    geo = site.get("geoPoint") or {}
    if geo.get("lat") is not None and geo.get("lon") is not None:
        res["position"] = {"latitude": geo["lat"], "longitude": geo["lon"]}
    return res


def sites(ctx: StudyContext) -> tuple[list[dict], list[dict]]:
    """(references for ResearchStudy.site, CodeableConcepts for ResearchStudy.region)."""
    refs: list[dict] = []
    countries: dict[str, dict] = {}
    for i, site in enumerate(ctx.module("contactsLocationsModule").get("locations") or []):
        path = f"{_PATH}[{i}]"
        loc = _location(site)
        loc_ref = ctx.add(loc)
        site_id = ctx.ids.take(f"{ctx.rs_id}-site-{digest(loc['id'], length=12)}")
        site_rs: dict = {
            "resourceType": "ResearchStudy",
            "id": site_id,
            "status": "active",
            "title": loc.get("name", "Site"),
            "partOf": [ctx.ref("ResearchStudy", ctx.rs_id)],
            "site": [loc_ref],
        }
        status = site.get("status")
        if status:
            code = vocab.lookup(vocab.STATUS, status, f"{path}.status")
            site_rs["progressStatus"] = [{"state": vocab.concept(vocab.STATUS_SYSTEM, code, status)}]
        refs.append(ctx.add(site_rs))

        country = site.get("country")
        code = iso_alpha2(country)
        key = code or country
        if key and key not in countries:
            countries[key] = vocab.concept(vocab.ISO3166_SYSTEM if code else None, code, country,
                                           ISO_NAMES.get(code) if code else None)
    return refs, list(countries.values())
