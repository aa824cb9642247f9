"""References, links and uploaded documents as ResearchStudy.relatedArtifact.

A reference with a PMID gets a PubMed URL so it resolves without a citation lookup; the
registry's reference type (BACKGROUND, RESULT, DERIVED) is kept as classifier text. The
source record itself is listed as `derived-from`, for provenance.
"""

from __future__ import annotations

from . import vocab
from .context import StudyContext

_PATH = "protocolSection.referencesModule.references"


def related_artifacts(ctx: StudyContext) -> list[dict]:
    out: list[dict] = [{
        "type": "derived-from",
        "label": "ClinicalTrials.gov record",
        "document": {"url": f"https://clinicaltrials.gov/study/{ctx.nct_id}"},
    }]
    rm = ctx.module("referencesModule")
    for i, ref in enumerate(rm.get("references") or []):
        rtype = ref.get("type")
        if rtype is not None:
            vocab.check(vocab.REFERENCE_TYPE, rtype, f"{_PATH}[{i}].type")
        art: dict = {"type": "citation"}
        if rtype:
            art["classifier"] = [{"text": rtype}]
        if ref.get("pmid"):
            art["label"] = f"PMID {ref['pmid']}"
            art["document"] = {"url": f"https://pubmed.ncbi.nlm.nih.gov/{ref['pmid']}/"}
        if ref.get("citation"):
            art["citation"] = ref["citation"]
        if len(art) > 1:
            out.append(art)
    for link in rm.get("seeAlsoLinks") or []:
        if link.get("url"):
            art = {"type": "documentation", "document": {"url": link["url"]}}
            if link.get("label"):
                art["label"] = link["label"]
                art["document"]["title"] = link["label"]
            out.append(art)
    docs = ((ctx.record.get("documentSection") or {}).get("largeDocumentModule") or {}).get("largeDocs") or []
    for doc in docs:
        if doc.get("filename"):
            url = f"https://cdn.clinicaltrials.gov/large-docs/{ctx.nct_id[-2:]}/{ctx.nct_id}/{doc['filename']}"
            art = {"type": "documentation", "document": {"url": url, "contentType": "application/pdf"}}
            if doc.get("label"):
                art["label"] = doc["label"]
                art["document"]["title"] = doc["label"]
            out.append(art)
    return out
