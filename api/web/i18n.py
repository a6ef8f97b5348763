"""Arabic and English: which language a request gets, and the translations of every label.

English is the source language (the msgids). Arabic comes from gettext catalogs
kept as `.po` files under `locale/ar/`, one per area of the pages (so the areas
are translated and reviewed separately); they are merged and compiled in memory
at first use, so no compiled `.mo` file is kept in the repository. The language
is the `lang` cookie (set by the switch on every page), else the browser's
`Accept-Language`, else English.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

from babel import Locale, negotiate_locale
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGUAGES = ("en", "ar")
DEFAULT = "en"
RTL = frozenset({"ar"})
LANG_COOKIE = "lang"
LOCALE_DIR = Path(__file__).parent / "locale"

_lock = threading.Lock()
_loaded: dict[str, NullTranslations] = {}


def N_(message: str) -> str:  # noqa: N802 - the gettext convention: marks a msgid translated later
    """Mark a label for extraction where it is defined; it is translated where it is shown."""
    return message


@dataclass(frozen=True)
class Language:
    code: str  # en | ar
    dir: str  # ltr | rtl
    translations: NullTranslations

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return self.translations.ngettext(singular, plural, count)

    @property
    def name(self) -> str:
        return Locale.parse(self.code).get_display_name(self.code) or self.code


def merged_catalog(code: str) -> Catalog:
    """Every `.po` of one language merged into one catalog (a msgid twice: the first file's, by name)."""
    merged = Catalog(locale=code, domain="messages")
    for path in sorted((LOCALE_DIR / code).glob("*.po")):
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=code)
        for message in catalog:
            if message.id and message.id not in merged:
                merged[message.id] = message
    return merged


def translations(code: str) -> NullTranslations:
    """The compiled translations of a language (English: the msgids themselves)."""
    if code == DEFAULT:
        return NullTranslations()
    with _lock:
        held = _loaded.get(code)
        if held is None:
            buffer = io.BytesIO()
            write_mo(buffer, merged_catalog(code))
            buffer.seek(0)
            held = Translations(buffer)
            _loaded[code] = held
        return held


def language(code: str) -> Language:
    code = code if code in LANGUAGES else DEFAULT
    return Language(code, "rtl" if code in RTL else "ltr", translations(code))


def choose(cookie: str | None, accept_language: str | None) -> Language:
    """The language of a request: the switch's cookie, else the browser's preference, else English."""
    if cookie in LANGUAGES:
        return language(cookie)
    wanted: list[tuple[str, float]] = []
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            wanted.append((tag.replace("-", "_"), quality))
    ordered = [tag for tag, _ in sorted(wanted, key=lambda pair: -pair[1])]
    found = negotiate_locale(ordered, list(LANGUAGES), sep="_") if ordered else None
    return language(found or DEFAULT)
