"""A printable custody certificate per item (data/records/certificates/<item-id>.pdf), for a court clerk.

One A4 document saying what the item is, its hashes and commitment, who
received it and when, every custody event of it with its sequence number,
the checkpoint those events are proven against, and the commands that check
it all by hand. It is made from the item's record and the item's events only,
which the export rules have already cleared, so it cannot name a victim or a
witness the records do not. fpdf2's core fonts are Latin-1: any other
character is transliterated or replaced, never dropped silently into an
error. The creation date is the export's, so the same input gives the same
bytes.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from typing import Any

from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos

from archive.custody.commit import PREFIX as ITEM_COMMIT
from archive.exports import formats
from archive.exports.formats import BundleInfo

_REPLACE = {"\u2014": "-", "\u2013": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
            "\u2026": "...", "\u2022": "*", "\u00a0": " ", "\u2192": "->",
            "\u0141": "L", "\u0142": "l", "\u0110": "D", "\u0111": "d", "\u0152": "OE", "\u0153": "oe",
            "\u0131": "i"}
_DETAILS_LIMIT = 600  # characters of an event's details printed (the event file holds them all)
_RECEIVED = ("ingestion", "capture")


def latin1(text: object) -> str:
    """`text` in Latin-1: common punctuation mapped, accents stripped when that suffices, else '?'."""
    out = []
    for char in str(text):
        char = _REPLACE.get(char, char)
        if len(char) == 1 and ord(char) > 0xFF:  # accents over Latin letters go; anything else becomes '?'
            decomposed = unicodedata.normalize("NFKD", char)
            char = "".join(c for c in decomposed if ord(c) <= 0xFF and not unicodedata.combining(c)) or "?"
        out.append(char)
    return "".join(out)


def _when(info: BundleInfo) -> datetime:
    try:
        return datetime.fromisoformat(info.created_at.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return datetime(2000, 1, 1, tzinfo=UTC)


class _Certificate(FPDF):
    def __init__(self, info: BundleInfo, item_id: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.info, self.item_id = info, item_id
        self.set_margins(18, 16, 18)
        self.set_auto_page_break(auto=True, margin=16)
        self.set_creation_date(_when(info))
        self.set_title(latin1(f"Custody certificate {item_id}"))
        self.set_subject(latin1(f"Evidence bundle {info.export_id}"))
        self.set_creator("evidence-archive")
        self.set_producer("evidence-archive (fpdf2)")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=7)
        self.cell(0, 5, latin1(f"Custody certificate for item {self.item_id} - bundle {self.info.export_id} - "
                               f"page {self.page_no()}/{{nb}}"), align="C")

    def heading(self, text: str) -> None:
        self.ln(2)
        self.set_font("Helvetica", style="B", size=11)
        self.cell(0, 7, latin1(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(120, 120, 120)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(1)

    def para(self, text: str, size: float = 9) -> None:
        self.set_font("Helvetica", size=size)
        self.multi_cell(0, 4.6, latin1(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def _columns(self, width: float) -> int:
        """Characters of the current (monospaced) font that fit in `width`."""
        return max(8, int(width / self.get_string_width("0")))

    def mono(self, text: str, size: float = 7.5) -> None:
        """Monospaced lines, cut at the page width by count (fpdf2's line breaker is slow on long tokens)."""
        self.set_font("Courier", size=size)
        columns = self._columns(self.epw)
        for line in latin1(text).split("\n"):
            for start in range(0, max(len(line), 1), columns):
                self.cell(0, 3.6, line[start:start + columns], new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def field(self, label: str, value: object, *, mono: bool = False) -> None:
        self.set_font("Helvetica", style="B", size=8.5)
        self.cell(40, 4.8, latin1(label))
        text = latin1(value)
        if mono:
            self.set_font("Courier", size=8)
            columns = self._columns(self.epw - 40)
            for start in range(0, max(len(text), 1), columns):
                if start:
                    self.set_x(self.l_margin + 40)
                self.cell(0, 4.8, text[start:start + columns], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            return
        self.set_font("Helvetica", size=9)
        self.line_of(text, 4.8, self.epw - 40)

    def line_of(self, text: str, height: float, width: float) -> None:
        """One line when it fits (fast), else wrapped."""
        if self.get_string_width(text) < width:
            self.cell(0, height, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        else:
            self.multi_cell(0, height, text, wrapmode=WrapMode.CHAR, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _received(item: dict[str, Any], events: list[dict[str, Any]]) -> tuple[str, str]:
    """(by, at) of the item's arrival: its ingestion event, else what the record says."""
    for event in events:
        if event.get("type") in _RECEIVED:
            return str(event.get("actor", "?")), str(event.get("time", "?"))
    by = item.get("received_by") or item.get("ingested_by") or "?"
    at = item.get("received_at") or item.get("ingested_at") or item.get("created_at") or "?"
    return str(by), str(at)


def _details(details: object) -> str:
    text = json.dumps(details, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= _DETAILS_LIMIT else text[:_DETAILS_LIMIT] + " ... (see the event file)"


def certificate_pdf(item: dict[str, Any], events: list[dict[str, Any]], checkpoint: str, info: BundleInfo) -> bytes:
    """The certificate of one item (an items.json record) with its decoded custody entries, in seq order."""
    item_id = str(item["id"])
    pdf = _Certificate(info, item_id)
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=15)
    pdf.cell(0, 9, "Certificate of custody", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.para(f"Item {item_id}, from the archive {info.origin}, in evidence bundle {info.export_id} "
             f"(exported {info.created_at} for purpose '{info.purpose}').", size=9.5)

    pdf.heading("1. The item")
    original = item.get("original") or formats.original_path(item_id, item.get("media_type"))
    pdf.field("Item id", item_id, mono=True)
    if item.get("original_name"):
        name = str(item["original_name"])
        pdf.field("Original file name", name if latin1(name) == name else
                  f"{name}   (letters this page cannot show are replaced; the exact name is in items.json)")
    pdf.field("Media type", item.get("media_type") or "unknown")
    pdf.field("Size", f"{item.get('size', '?')} bytes")
    pdf.field("File in the bundle", f"{original}" + (f" (part {item['part']} of {info.parts})"
                                                     if info.parts > 1 and item.get("part") else ""), mono=True)
    pdf.field("SHA-256", item.get("sha256", "?"), mono=True)
    if item.get("sha512"):
        pdf.field("SHA-512", item["sha512"], mono=True)
    pdf.field("Commitment", item.get("commitment", "?"), mono=True)
    pdf.field("Committed in event", f"seq {item.get('commitment_event', '?')}")

    pdf.heading("2. Receipt and transfer")
    by, at = _received(item, events)
    pdf.field("Received by", f"{by} (archive account)")
    pdf.field("Received at", at)
    recipient = info.to or ("the holders of the age keys " + ", ".join(f[:16] for f in info.recipients)
                            if info.recipients else "no named recipient (plaintext bundle)")
    pdf.field("Exported to", recipient)
    pdf.field("Export started", f"{info.created_at}, custody event seq {info.started_seq}")

    pdf.heading(f"3. Custody events of this item ({len(events)})")
    if not events:
        pdf.para("No custody event of this item is carried in the bundle.")
    for event in events:
        pdf.set_font("Helvetica", style="B", size=8.5)
        pdf.line_of(latin1(f"seq {event.get('seq', '?')}  {event.get('type', '?')}  {event.get('time', '?')}  "
                           f"by {event.get('actor', '?')}  outcome {event.get('outcome', '?')}"), 4.6, pdf.epw)
        pdf.mono(_details(event.get("details", {})))
        pdf.mono(f"file {formats.EVENTS}{event.get('seq', '?')}.json   proof "
                 f"{formats.PROOFS}{event.get('seq', '?')}.tlog-proof")
        pdf.ln(0.8)

    pdf.heading(f"4. The checkpoint (log size {info.checkpoint_size})")
    pdf.para("Every event above is proven to be in the archive's append-only log by its tlog-proof against this "
             f"signed checkpoint ({formats.CHECKPOINT}); the signature line starts with an em dash, shown here as '-'.")
    pdf.mono(checkpoint.rstrip("\n"))

    pdf.heading("5. How to check this by hand")
    pdf.para("Inside the unpacked bundle folder (README.txt explains every step; verify.py does them all):")
    pdf.mono(f"sha256sum {original}            # must print the SHA-256 above\n"
             f"printf '{ITEM_COMMIT} %s %s %s\\n' {item_id} SALT SHA256 | sha256sum\n"
             f"      # SALT from {formats.SALTS} (\"items\"); must print the commitment above\n"
             f"(printf '\\000'; cat {formats.EVENTS}N.json) | sha256sum   # leaf hash of event N\n"
             f"      # check {formats.PROOFS}N.tlog-proof with any C2SP tlog-proof / RFC 9162 verifier\n"
             f"      # and the checkpoint with the archive's log key, obtained through a trusted channel\n"
             "bagit.py --validate .   ;   sha256sum -c manifest-sha256.txt\n"
             "python3 verify.py --vkey ARCHIVE-LOG.vkey")
    pdf.para("The keys inside the bundle show it is intact; only the archive's keys obtained independently "
             "establish that the archive made it.", size=8)
    return bytes(pdf.output())
