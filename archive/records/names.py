"""Normalizing names so that reports of one person from several sources meet.

Arabic names arrive spelled many ways: with or without diacritics and
tatweel, alef with or without hamza or madda, final ya as alef maqsura, ta
marbuta as ha, the article attached or not ("الحمصي" / "حمصي"). Latin
transliterations differ by case, hyphens and the article ("al-", "el-").
`normalize` maps all of these to one form; it is used only to compare, never
shown.
"""

from __future__ import annotations

import re
import unicodedata

_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")  # harakat, Quranic marks, tatweel
_LETTERS = str.maketrans({
    "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ٲ": "ا", "ٳ": "ا",
    "ى": "ي", "ئ": "ي", "ی": "ي", "ي": "ي",
    "ة": "ه", "ۀ": "ه",
    "ؤ": "و",
    "ک": "ك",
})
_PUNCTUATION = re.compile(r"[\s\-_.,'\"`ʼ’‘()/\\]+")
_LATIN_ARTICLE = re.compile(r"^(?:al|el|al-|el-)$")


def _strip_article(word: str) -> str:
    if word.startswith("ال") and len(word) > 3:
        return word[2:]
    if len(word) > 4 and word[:3] in ("al-", "el-"):
        return word[3:]
    return word


def normalize(name: str) -> str:
    """One comparable form of a name: NFKC, no diacritics, unified letters, no article, single spaces."""
    text = unicodedata.normalize("NFKC", name).casefold()
    text = _DIACRITICS.sub("", text).translate(_LETTERS)
    text = re.sub(r"\b(al|el)-", "", text)  # "al-Homsi" → "homsi"
    words = [_strip_article(w) for w in _PUNCTUATION.split(text) if w]
    return " ".join(w for w in words if not _LATIN_ARTICLE.match(w))


def tokens(name: str) -> list[str]:
    """The normalized words of a name."""
    return normalize(name).split()
