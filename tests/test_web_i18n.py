"""Every label of the pages has its Arabic translation, and the catalogs are well formed.

The msgids are extracted from the templates and the pages' Python code the way
`pybabel extract` would (the `_`, `gettext`, `ngettext` and `N_` calls), so a
label added in English without its Arabic fails here, not in front of a user.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract

from api.web.i18n import LOCALE_DIR, merged_catalog, translations

WEB = Path(__file__).resolve().parents[1] / "api" / "web"
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}


def _ids(message: str | tuple[str, ...]) -> list[str]:
    """The catalog key of an extracted message: a plural (ngettext) is kept under its singular."""
    return [message] if isinstance(message, str) else [message[0]] if message and message[0] else []


def extracted() -> dict[str, set[str]]:
    """msgid -> the files using it."""
    found: dict[str, set[str]] = {}
    for path in sorted((WEB / "templates").rglob("*.html")):
        with path.open("rb") as handle:
            for _line, message, _comments, _context in extract("jinja2.ext:babel_extract", handle, keywords=KEYWORDS,
                                                                options={"extensions": "jinja2.ext.i18n"}):
                for text in _ids(message):
                    found.setdefault(text, set()).add(path.name)
    for path in sorted(WEB.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        with path.open("rb") as handle:
            for _line, message, _comments, _context in extract("python", handle, keywords=KEYWORDS):
                for text in _ids(message):
                    found.setdefault(text, set()).add(path.name)
    return found


def test_every_label_has_its_arabic_translation() -> None:
    catalog = merged_catalog("ar")
    def translated(text: str) -> bool:
        message = catalog.get(text)
        if message is None:
            return False
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        return all(forms) and bool(forms)

    missing = {text: sorted(files) for text, files in extracted().items() if not translated(text)}
    assert not missing, "labels without an Arabic translation (add them to api/web/locale/ar/<area>.po):\n" + \
        "\n".join(f"  {text!r} in {', '.join(files)}" for text, files in sorted(missing.items()))


def test_the_extraction_sees_the_labels() -> None:
    found = extracted()
    assert "Sign out" in found and "Dashboard" in found and "The archive is locked" in found


def test_the_catalogs_are_arabic_and_translate() -> None:
    files = sorted((LOCALE_DIR / "ar").glob("*.po"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "Language: ar" in text, f"{path.name} does not say it is Arabic"
    assert translations("ar").gettext("Dashboard") == "لوحة المتابعة"
    assert translations("en").gettext("Dashboard") == "Dashboard"


def test_no_translation_keeps_english_where_arabic_is_expected() -> None:
    """A msgstr identical to its English msgid is a label left untranslated (short technical words aside)."""
    catalog = merged_catalog("ar")
    same = [m.id for m in catalog if m.id and isinstance(m.id, str) and m.string == m.id and len(m.id) > 6
            and any(ch.isalpha() for ch in m.id)]
    assert not same, f"left in English: {same[:20]}"
