"""The interchange files: the CSV (or JSON Lines) that documentation groups' spreadsheets already hold.

Reading turns a file into numbered rows of fields named as the columns, or
into problems, each with its file and line: the header is line 1 of a CSV
file; in JSON Lines line 1 is the first object. Only the shape of the file is
checked here (encoding, header, field counts, JSON objects); what a row
means is checked by `archive.records.rules`, in one place for forms and
imports. Writing gives the same format back, so an export imports again.

UTF-8 only: a UTF-8 byte-order mark (what spreadsheets write) is skipped;
UTF-16 or UTF-32 text, or bytes that are not UTF-8, are refused with the
line they are on, since a guessed encoding would silently change names.

Spreadsheet safety: a CSV cell whose text starts with `=`, `+`, `-`, `@`, a
tab or a carriage return (and is not a plain number such as `-12.5`) is
exported with one leading `'`, so a spreadsheet shows it as text instead of
running it as a formula (a name like `=HYPERLINK(...)` would otherwise send
the next cells away); reading drops exactly that one `'` again, so an
export imports as the same text, byte for byte.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from archive.records.rules import FIELDS, REQUIRED, VICTIM_FIELDS, VICTIM_REQUIRED
from archive.services.errors import Invalid

FORMATS = ("csv", "jsonl")
MAX_LINE = 1 << 20  # bytes in one line of a file: a narrative of 20,000 Arabic characters is 40 KB
MAX_PROBLEMS = 1000  # per file: enough to fix a spreadsheet by, not a report as long as the file
CONSENT_COLUMNS = ("family_consent", "consent_date", "consent_recorded_by")


@dataclass(frozen=True)
class Layout:
    """One kind of file: its columns in their export order, and those it must have."""

    what: str  # incidents | victims
    columns: tuple[str, ...]
    required: tuple[str, ...]


INCIDENTS = Layout("incidents", FIELDS, REQUIRED)
VICTIMS = Layout("victims", VICTIM_FIELDS, VICTIM_REQUIRED)
_FORMULA = re.compile(r"^'*[=+\-@\t\r]")  # what a spreadsheet may run as a formula (OWASP: CSV injection)
_NUMBER = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")
_UTF16_32 = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass(frozen=True)
class Problem:
    """A bad row (or a bad file: line 1 for its header): where, and why."""

    file: str
    line: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class Parsed:
    """A file being read: its rows come one at a time from `rows()` (never all in memory), and every problem
    found is kept here (capped, `total` counts them all); `count` counts the rows given so far."""

    file: str
    layout: Layout
    fmt: str = "csv"
    problems: list[Problem] = field(default_factory=list)
    total: int = 0
    count: int = 0
    handle: BinaryIO | None = None

    def problem(self, line: int, reason: str) -> None:
        self.total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(self.file, line, reason))

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Each row as (line, fields named as the columns), read as it is needed; the file closed at the end."""
        if self.handle is None:
            return
        try:
            reader = _read_csv if self.fmt == "csv" else _read_jsonl
            for row in reader(_lines(self.handle, self), self):
                self.count += 1
                yield row
        finally:
            self.close()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Invalid(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


def read(path: str | Path | BinaryIO, layout: Layout, fmt: str) -> Parsed:
    """A file opened for reading row by row (`Parsed.rows`); `Invalid` only when it cannot be opened at all.

    A special file (`/dev/zero`, a pipe) is read the same way: a line longer
    than `MAX_LINE` bytes ends the reading with a problem, so nothing grows
    without bound. An open binary file is read as it is (the HTTP API's
    upload, decrypted as it is read: it never rests in clear), named by its
    `name`, and closed like a file opened here.
    """
    check_format(fmt)
    if not isinstance(path, str | Path):
        return Parsed(str(getattr(path, "name", layout.what)), layout, fmt, handle=path)
    name = str(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed by Parsed.rows / close)
    except OSError as exc:
        raise Invalid(f"{name}: cannot read it ({exc.strerror or exc})") from None
    return Parsed(name, layout, fmt, handle=handle)


def _lines(handle: BinaryIO, parsed: Parsed) -> Iterator[str]:
    """The file's lines as text (line endings kept, for the CSV reader), one at a time.

    A UTF-8 byte-order mark is skipped; UTF-16/32, a NUL byte, bytes that are
    not UTF-8 and a line over `MAX_LINE` bytes are problems on their line
    (decoding goes on with replacement characters, so later lines are still
    checked, but the file imports nothing).
    """
    number = 0
    while True:
        raw = handle.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        if number == 1:
            if raw.startswith(_UTF16_32):
                parsed.problem(1, "not UTF-8: the file is UTF-16 or UTF-32 text (save it as UTF-8)")
                return
            if raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
        if len(raw) > MAX_LINE:
            parsed.problem(number, f"line longer than {MAX_LINE} bytes: not a spreadsheet's line (is this the "
                                   "right file?)")
            return
        if b"\0" in raw:
            parsed.problem(number, f"a NUL byte at column {raw.index(0) + 1}" +
                           (" (UTF-16 text? save the file as UTF-8)" if number == 1 else ""))
            if number == 1:
                return
            raw = raw.replace(b"\0", b"")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            parsed.problem(number, f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1} "
                                   "(save the file as UTF-8)")
            yield raw.decode("utf-8", errors="replace")


def _header(reader: Any, parsed: Parsed) -> tuple[list[str], int] | None:
    """The header row (blank lines before it skipped) and its line, or None with its problems."""
    layout = parsed.layout
    for cells in reader:
        if any(c.strip() for c in cells):
            break
    else:
        if not parsed.total:
            parsed.problem(max(reader.line_num, 1), "empty file: no header row")
        return None
    line = reader.line_num
    header = [h.strip() for h in cells]
    while header and not header[-1]:
        header.pop()  # a trailing comma (spreadsheets write one): checked again on every row's cells
    empty = [str(i) for i, h in enumerate(header, 1) if not h]
    if empty:
        parsed.problem(line, f"an empty column name (column {', '.join(empty)})")
    unknown = sorted({h for h in header if h and h not in layout.columns})
    if unknown:
        parsed.problem(line, f"unknown column(s): {', '.join(unknown)} (known: {', '.join(layout.columns)})")
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        parsed.problem(line, f"column(s) given twice: {', '.join(twice)}")
    missing = [c for c in layout.required if c not in header]
    if missing:
        parsed.problem(line, f"missing required column(s): {', '.join(missing)}")
    return (header, line) if not (empty or unknown or twice or missing) else None


def _read_csv(lines: Iterator[str], parsed: Parsed) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(lines, strict=True)
    try:
        found = _header(reader, parsed)
        if found is None:
            return
        header, last = found
        for cells in reader:
            line, last = last + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(header) and not any(c.strip() for c in cells[len(header):]):
                cells = cells[: len(header)]  # the empty cells of a trailing comma
            if len(cells) != len(header):
                parsed.problem(line, f"{len(cells)} fields, the header has {len(header)}")
                continue
            yield line, dict(zip(header, map(unescape, cells), strict=True))
    except csv.Error as exc:
        parsed.problem(reader.line_num or 1, f"not a CSV row: {exc}")


class _TwiceError(ValueError):
    pass


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are each given once (a repeated key would silently drop a value)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        raise _TwiceError(", ".join(sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)))
    return value


def _read_jsonl(lines: Iterator[str], parsed: Parsed) -> Iterator[tuple[int, dict[str, Any]]]:
    layout = parsed.layout
    given = False
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw, object_pairs_hook=_once)
        except _TwiceError as exc:
            parsed.problem(number, f"key(s) given twice: {exc}")
            continue
        except json.JSONDecodeError as exc:
            parsed.problem(number, f"not JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(value, dict):
            parsed.problem(number, f"not a JSON object (a line holds one {layout.what[:-1]} as an object)")
            continue
        unknown = sorted(k for k in value if k not in layout.columns)
        if unknown:
            parsed.problem(number, f"unknown column(s): {', '.join(unknown)}")
            continue
        bad = sorted(k for k, v in value.items() if not _plain(v))
        if bad:
            parsed.problem(number, f"{', '.join(bad)}: must be text, a number, true/false, null or a list of text")
            continue
        given = True
        yield number, value  # null: the column given empty (a key left out: not given)
    if not given and not parsed.total:
        parsed.problem(1, "empty file: no records")


def _plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(v, str) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def escape(text: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula: one `'` before a cell that starts (after any `'`)
    with `=`, `+`, `-`, `@`, a tab or a carriage return, unless it is a plain number (`-12.5`)."""
    return "'" + text if _FORMULA.match(text) and not _NUMBER.match(text) else text


def unescape(text: str) -> str:
    """What `escape` wrote, back: exactly one leading `'` dropped before such a start, so an export
    imports as the same text, a cell that really starts with `'=` included (it is exported as `''=`)."""
    return text[1:] if text.startswith("'") and _FORMULA.match(text[1:]) and not _NUMBER.match(text[1:]) else text


def cell(value: Any, fmt: str) -> Any:
    """A state's value as the file holds it: CSV text (`true`/`false`, `;`-joined lists; formula-like text
    escaped, see `escape`), or JSON as is."""
    if fmt == "jsonl":
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return escape(";".join(str(v) for v in value))
    return escape(str(value))


def check_target(path: str | Path, force: bool) -> Path:
    """Where an export may go: into a folder that exists, not onto a folder, and onto an existing file only
    with `force` (`Invalid` otherwise, before anything is written)."""
    target = Path(path)
    if target.is_dir():
        raise Invalid(f"{target}: is a folder; name the file to write")
    if not target.parent.is_dir():
        raise Invalid(f"{target}: the folder {target.parent} does not exist")
    if (target.exists() or target.is_symlink()) and not force:
        raise Invalid(f"{target}: exists already; give --force to replace it")
    return target


def write(path: str | Path, layout: Layout, rows: Iterable[dict[str, Any]], fmt: str, *,
          force: bool = False) -> int:
    """Write rows (every column of the layout) to `path`, whole or not at all; the number of rows.

    The rows go to a fresh file beside the target (created exclusively, never
    through a planted link, readable by its owner only: it holds names and
    narratives), which replaces the target once complete and is removed if
    anything fails.
    """
    check_format(fmt)
    target = check_target(path, force)
    part = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
    count = 0
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with open(fd, "w", encoding="utf-8", newline="") as out:
            if fmt == "csv":
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(layout.columns)
                for row in rows:
                    writer.writerow([cell(row.get(c), fmt) for c in layout.columns])
                    count += 1
            else:
                for row in rows:
                    out.write(json.dumps({c: row.get(c) for c in layout.columns}, ensure_ascii=False) + "\n")
                    count += 1
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return count
