"""Whether the site data of this run differs from what was last published.

Participant data is gated and mapped per site as a whole; doing that on every run, whatever
landed, costs ~45 s per 10,000 participants. The outcome depends only on the current deliveries
(their folder states), the registry versions they are checked against, and the pseudonym key, so a
fingerprint of those three decides whether the work is needed again.
"""
from __future__ import annotations

import hashlib
import hmac

from transforms.sites import sql_text

DELIVERY_STATES = "SELECT delivery_key, state_sha256 FROM raw.site_delivery_current ORDER BY delivery_key"


# Bumped when the participants' mapping changes what it writes for the same input, so a warehouse that
# published participants under the old mapping maps them again once (2: FHIR participants carry their
# study's nct_id and a version; partial starts within the consent's period are the consent date).
MAPPING_VERSION = 2


def site_fingerprint(con, registry_hashes: dict[str, str], pseudonym_key: bytes) -> str:
    h = hashlib.sha256()
    h.update(f"mapping\0{MAPPING_VERSION}\0".encode())
    for key, state in con.execute(DELIVERY_STATES).fetchall():
        h.update(f"delivery\0{key}\0{state}\0".encode())
    for nct_id in sorted(registry_hashes):
        h.update(f"registry\0{nct_id}\0{registry_hashes[nct_id]}\0".encode())
    # A keyed digest: a changed key changes every pseudonym, and the key itself is never stored.
    h.update(hmac.new(pseudonym_key, b"trialhouse-site-fingerprint", hashlib.sha256).digest())
    return h.hexdigest()


def registry_records(con, nct_ids: list[str]) -> list[tuple[str, str, str]]:
    """(nct_id, content_hash, payload) of the registry version each study's site data is checked
    against (sql/registry_record.sql); the version is part of the fingerprint."""
    if not nct_ids:
        return []
    return con.execute(sql_text("registry_record.sql"), [nct_ids] * 3).fetchall()


def ensure_tables(con) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute("CREATE SCHEMA IF NOT EXISTS stage")
    con.execute("CREATE TABLE IF NOT EXISTS meta.site_state (fingerprint VARCHAR NOT NULL, run_id VARCHAR, "
                "published_at TIMESTAMP NOT NULL)")
    con.execute("CREATE TABLE IF NOT EXISTS stage.site_fingerprint (fingerprint VARCHAR NOT NULL)")
    con.execute("CREATE TABLE IF NOT EXISTS stage.site_scope (nct_id VARCHAR NOT NULL, run_id VARCHAR NOT NULL)")


def last_published(con) -> str | None:
    row = con.execute("SELECT fingerprint FROM meta.site_state ORDER BY published_at DESC LIMIT 1").fetchone()
    return row[0] if row else None


def stage_fingerprint(con, fingerprint: str | None) -> None:
    """Remember what this run staged (None: nothing), for the publish to record."""
    con.execute("DELETE FROM stage.site_fingerprint")
    if fingerprint:
        con.execute("INSERT INTO stage.site_fingerprint VALUES (?)", [fingerprint])


def stage_scope(con, run_id: str, nct_ids: list[str]) -> None:
    """The studies whose participants this run staged whole (every current delivery of each), so the
    publish can drop the published participants of theirs it no longer stages: one a newer delivery
    left out, or the gate now holds."""
    con.execute("DELETE FROM stage.site_scope")
    if nct_ids:
        con.execute("INSERT INTO stage.site_scope SELECT unnest(?::VARCHAR[]), ?", [sorted(nct_ids), run_id])


def publish_fingerprint(con, run_id: str, now) -> int:
    """Inside the publish transaction: the staged fingerprint becomes the published one."""
    ensure_tables(con)
    n = con.execute("INSERT INTO meta.site_state SELECT fingerprint, ?, ? FROM stage.site_fingerprint",
                    [run_id, now]).fetchone()[0]
    con.execute("DELETE FROM stage.site_fingerprint")
    return n
