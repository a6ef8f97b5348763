"""Vocabularies as data: parties, incident types, governorates, professions, weapons.

The default Syrian set (`vocab_syria.json`) is loaded into `vocab_terms` the
first time records are used; another conflict loads its own file with
`evidence vocab load FILE` (same format, `evidence-vocab/1`). Loading adds and
relabels terms and never removes one: records already name them.

Vocabularies change the statistics (a party's group, an incident type's
`facility` group), so every load is a custody event (PREMIS `metadata
modification`, details `{"change": "vocabulary", "vocabulary_sha256"}`): the
SHA-256 of the RFC 8785 bytes of the whole table after the load (`digest`).
`log verify` holds the table against the latest such event, and a rebuild
loads only a journalled vocabulary that event vouches for. The default set,
seeded on first use, needs no event: it is recognized by its digest
(`default_digests`).

The small closed sets the interchange format itself defines (precisions,
damage levels, certainties, consent scopes, source kinds …) are constants
here, not data: changing them changes the format.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from archive.records.tables import VocabTerm
from archive.services.errors import Invalid

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlmodel import Session

FORMAT = "evidence-vocab/1"
DEFAULT_FILE = Path(__file__).with_name("vocab_syria.json")
VOCABULARIES = ("parties", "incident_types", "governorates", "professions", "weapons")
PARTY_GROUPS = ("main", "other")
VOCABULARY_CHANGE = "vocabulary"  # details["change"] of the custody event of a load
METADATA_MODIFICATION = "metadata modification"  # PREMIS event type

PRECISIONS = ("day", "hour", "minute", "about")
FACILITY_DAMAGE = ("slight", "moderate", "heavy", "out_of_service")
SEXES = ("male", "female", "unknown")
AGE_GROUPS = ("child", "adult", "unknown")
CERTAINTIES = ("confirmed", "probable", "possible")
CONSENT_SCOPES = ("un_bodies", "courts", "publication")
CONSENT_ANSWERS = ("yes", "no", "not_asked")
CHANNELS = ("upload", "email", "messaging", "social_media", "field_researcher", "legacy_disk")
# The brief's ranking of sources: survivors first, then eyewitnesses and the people who filmed,
# then open sources, then medical staff who treated the victims; official statements last.
SOURCE_RELIABILITY = {"survivor": 1, "eyewitness": 2, "filmer": 2, "open_source": 3, "medical": 4, "official": 5}
CHILD_AGE = 18  # under this age a victim is a child
MASSACRE_CIVILIANS = 5  # an incident with at least this many civilian victims is a massacre


@dataclass
class Vocab:
    """A snapshot of every vocabulary, for validating a request or a whole import without a query per value."""

    terms: dict[str, dict[str, VocabTerm]] = field(default_factory=dict)

    @classmethod
    def read(cls, session: Session) -> Vocab:
        ensure_default(session)
        vocab = cls({name: {} for name in VOCABULARIES})
        for term in session.exec(select(VocabTerm)).all():
            vocab.terms.setdefault(term.vocabulary, {})[term.key] = term
        return vocab

    def check(self, vocabulary: str, key: str, what: str | None = None) -> str:
        """`key` if `vocabulary` holds it, else `Invalid` naming the field and the value."""
        if key not in self.terms.get(vocabulary, {}):
            known = ", ".join(sorted(self.terms.get(vocabulary, {}))[:20])
            raise Invalid(f"{what or vocabulary}: unknown value {key!r} (known: {known})")
        return key

    def group(self, party: str) -> str:
        """A party's group (`main` or `other`)."""
        term = self.terms.get("parties", {}).get(party)
        return term.group if term is not None and term.group else "other"

    def facility_types(self) -> set[str]:
        """The incident types that are attacks on facilities (group `facility`)."""
        return {k for k, t in self.terms.get("incident_types", {}).items() if t.group == "facility"}

    def keys(self, vocabulary: str) -> list[str]:
        return sorted(self.terms.get(vocabulary, {}))


def _normal(terms: Iterable[tuple[str, str, str | None, list[str] | None, str | None]]) -> dict[str, Any]:
    """The digested form of (vocabulary, key, label, former names, group) terms: ids and order left out."""
    vocabularies: dict[str, list[dict[str, Any]]] = {}
    for name, key, label, former, group in sorted(terms, key=lambda t: (t[0], t[1])):
        entry: dict[str, Any] = {"key": key, "label": label, "former_names": list(former or [])}
        if group is not None:
            entry["group"] = group
        vocabularies.setdefault(name, []).append(entry)
    return {"format": FORMAT, "vocabularies": vocabularies}


def _sha256(document: dict[str, Any]) -> str:
    from archive.custody.entry import canonical

    return hashlib.sha256(canonical(document)).hexdigest()


def document_digest(data: Any) -> str:
    """The digest of the table a document would make, loaded into an empty one (`Invalid` if malformed)."""
    vocabularies = parse(data, "vocabulary document")
    return _sha256(_normal((name, t["key"], t.get("label", t["key"]), t.get("former_names", []), t.get("group"))
                           for name, terms in vocabularies.items() for t in terms))


def digest(session: Session) -> str:
    """SHA-256 (hex) of the RFC 8785 bytes of the whole vocabulary table (sorted by vocabulary and key)."""
    rows = session.exec(select(VocabTerm)).all()
    return _sha256(_normal((t.vocabulary, t.key, t.label, t.former_names, t.group) for t in rows))


@cache
def default_digests() -> frozenset[str]:
    """The digests a table may have with no vocabulary event: empty (records never used), or the default set."""
    return frozenset({_sha256(_normal(())), document_digest(json.loads(DEFAULT_FILE.read_text(encoding="utf-8")))})


def record_load(session: Session, actor: str) -> str:
    """The custody event of a load (in the caller's transaction): the table's digest after it; the digest."""
    from archive.custody.log import append_event

    sha256 = digest(session)
    append_event(session, METADATA_MODIFICATION, actor=actor,
                 details={"change": VOCABULARY_CHANGE, "vocabulary_sha256": sha256})
    return sha256


def ensure_default(session: Session) -> None:
    """Load the default set into an empty vocabulary table (the first use of records in a catalog)."""
    if session.exec(select(VocabTerm.id).limit(1)).first() is None:
        load(session, json.loads(DEFAULT_FILE.read_text(encoding="utf-8")))


def parse(data: Any, where: str = "vocabulary file") -> dict[str, list[dict[str, Any]]]:
    """The vocabularies of an `evidence-vocab/1` document, checked; `Invalid` says what is wrong and where."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise Invalid(f"{where}: not an {FORMAT} document (its \"format\" must be {FORMAT!r})")
    vocabularies = data.get("vocabularies")
    if not isinstance(vocabularies, dict):
        raise Invalid(f"{where}: \"vocabularies\" must be an object")
    out: dict[str, list[dict[str, Any]]] = {}
    for name, terms in vocabularies.items():
        if name not in VOCABULARIES:
            raise Invalid(f"{where}: unknown vocabulary {name!r} (known: {', '.join(VOCABULARIES)})")
        if not isinstance(terms, list):
            raise Invalid(f"{where}: {name} must be a list of terms")
        seen: set[str] = set()
        for i, term in enumerate(terms):
            at = f"{where}: {name}[{i}]"
            if not isinstance(term, dict) or not isinstance(term.get("key"), str):
                raise Invalid(f"{at}: a term is an object with a string \"key\"")
            key = term["key"]
            if not key or len(key) > 64 or not all(c.isascii() and (c.isalnum() or c == "_") for c in key):
                raise Invalid(f"{at}: key {key!r} must be 1-64 ASCII letters, digits or underscores")
            if key in seen:
                raise Invalid(f"{at}: key {key!r} appears twice")
            seen.add(key)
            if name == "parties" and term.get("group") not in PARTY_GROUPS:
                raise Invalid(f"{at}: party {key!r} needs a group, one of {', '.join(PARTY_GROUPS)}")
            former = term.get("former_names", [])
            if not isinstance(former, list) or not all(isinstance(f, str) for f in former):
                raise Invalid(f"{at}: former_names must be a list of strings")
            label = term.get("label", key)
            if not isinstance(label, str) or len(label) > 255:
                raise Invalid(f"{at}: label must be a string of at most 255 characters")
        out[name] = terms
    return out


def load(session: Session, data: Any, where: str = "vocabulary file") -> dict[str, dict[str, int]]:
    """Add or relabel the terms of a document; returns {vocabulary: {"added": n, "updated": n}}.

    No term is ever removed: incidents and victims already recorded name them.
    A party's or an incident type's group may not change, as statistics
    already count it so (facility attacks by type); a relabelling keeps the
    key, and what a term leaves out (group, former names) stays as stored.
    """
    vocabularies = parse(data, where)
    existing = {(t.vocabulary, t.key): t for t in session.exec(select(VocabTerm)).all()}
    report: dict[str, dict[str, int]] = {}
    for name, terms in vocabularies.items():
        counts = report.setdefault(name, {"added": 0, "updated": 0})
        for term in terms:
            row = existing.get((name, term["key"]))
            values = {"label": term.get("label", term["key"]), "group": term.get("group"),
                      "former_names": list(term.get("former_names", []))}
            if row is not None:  # what a term leaves out stays as stored (a relabelling keeps group, names)
                values = {"label": term.get("label", row.label), "group": term.get("group", row.group),
                          "former_names": list(term.get("former_names", row.former_names))}
            if row is None:
                session.add(VocabTerm(vocabulary=name, key=term["key"], **values))
                counts["added"] += 1
            elif (row.label, row.group, row.former_names) != (values["label"], values["group"],
                                                               values["former_names"]):
                if name in ("parties", "incident_types") and row.group != values["group"]:
                    raise Invalid(f"{where}: {name[:-1].replace('_', ' ')} {row.key!r} is in group {row.group!r}; "
                                  "a loaded file may not move it (statistics already count it there)")
                row.label, row.group, row.former_names = values["label"], values["group"], values["former_names"]
                session.add(row)
                counts["updated"] += 1
    session.flush()
    return report


def find_party(vocab: Vocab, text: str) -> str | None:
    """The party key for a key or any of its labels or former names (case-insensitive), else None."""
    wanted = text.strip().casefold()
    for key, term in vocab.terms.get("parties", {}).items():
        if wanted in {key.casefold(), term.label.casefold(), *(n.casefold() for n in term.former_names)}:
            return key
    return None
