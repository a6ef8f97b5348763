"""Scoring pairs of victim records that may be one person reported by several sources.

Reports of one death arrive from a field researcher, a hospital list and a
social-media post, each spelling the name its own way. A pair is scored on
the normalized names (`archive.records.names`: diacritics, alef and ya
forms, ta marbuta, the article) and on what the reports say about the death:
its date, the governorate, the sex, the age. Some clues rule a pair out
outright (a different sex, a child and an adult, ages far apart, deaths more
than a year apart); the rest weigh in. Only pairs whose names are close are
ever suggested, and a human confirms or rejects each one.

Comparing every pair of 100,000 victims is out of the question: pairs are
drawn from blocks of victims that share two name words, or one name word and
the date of death; a block too big to compare (a very common pair of names)
is split by governorate of death, then by month and day of death.
Everything here is pure: the caller opens the sealed names in memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from difflib import SequenceMatcher
from functools import lru_cache
from itertools import combinations
from typing import Any

from archive.records.names import normalize
from archive.records.store import is_child

NAME_GATE = 0.8  # names less alike than this are never suggested, whatever else agrees
SUGGEST = 0.8  # the overall score from which a pair becomes a candidate
TOKEN_ALIKE = 0.8  # two name words this alike (edit similarity) count as the same word
BLOCK_CAP = 100  # a block bigger than this is split further before its pairs are compared
AGE_SPREAD = 3  # reports of one person rarely give ages further apart than this
DEATH_SPREAD = 365  # nor dates of death more than this many days apart


@dataclass(frozen=True, slots=True)
class Profile:
    """What matching needs of one victim (opened from its sealed state), never shown to anyone.

    `death` (the date of death as a day number) and `child` (child, adult, or
    None when the report says neither) are worked out once, not per pair.
    """

    id: str
    incident_id: str
    tokens: tuple[str, ...]
    sex: str
    age: int | None
    age_group: str | None
    date_of_death: str | None
    governorate_of_death: str | None
    death: int | None
    child: bool | None


def name_tokens(name: str) -> tuple[str, ...]:
    """The normalized words of a name, with the compound "عبد …" as one word ("عبد الله" = "عبدالله")."""
    words: list[str] = []
    for word in normalize(name).split():
        if word.startswith("عبدال") and len(word) > 5:
            word = "عبد" + word[5:]  # the article inside the compound, as `normalize` drops it from a word
        if words and words[-1] == "عبد":
            words[-1] += word
        else:
            words.append(word)
    return tuple(words)


def profile(victim_id: str, state: dict[str, Any]) -> Profile | None:
    """A victim's profile from its state; None for an anonymous victim (there is no name to match on)."""
    tokens = name_tokens(state.get("name") or "")
    if not tokens:
        return None
    age, group, died = state.get("age"), state.get("age_group"), state.get("date_of_death")
    child = None if age is None and group not in ("child", "adult") else is_child(age, group)
    return Profile(victim_id, state["incident_id"], tokens, state.get("sex") or "unknown", age, group, died,
                   state.get("governorate_of_death"), date.fromisoformat(died).toordinal() if died else None, child)


def _ratio(a: str, b: str) -> float:
    return 1.0 if a == b else SequenceMatcher(None, a, b, autojunk=False).ratio()


@lru_cache(maxsize=1 << 18)  # names repeat (common given and family names): each pair of names is scored once
def name_similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """0..1: how many words of the names agree (exactly or by edit similarity), and how alike the whole is.

    A report that leaves out the father's name ("أحمد محمد الحمصي" / "أحمد
    الحمصي") still scores high; two different given names with one family
    name ("محمد الحمصي" / "أحمد الحمصي") do not.
    """
    if not a or not b or _ratio(a[0], b[0]) < TOKEN_ALIKE:
        return 0.0  # the given name comes first: "علي حسين" (Ali son of Hussein) is not "حسين علي"
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    free = list(long)
    matched = 0.0
    for word in short:
        best, where = 0.0, -1
        for i, other in enumerate(free):
            alike = _ratio(word, other)
            if alike > best:
                best, where = alike, i
        if best >= TOKEN_ALIKE:
            matched += best
            free.pop(where)
    words = 0.5 * matched / len(short) + 0.5 * matched / len(long)
    return 0.7 * words + 0.3 * _ratio("".join(a), "".join(b))


@dataclass(frozen=True)
class Score:
    """A pair's score (per mille) and the clues behind it, in words that name nobody."""

    value: int
    clues: tuple[str, ...]


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}{'s' if n != 1 else ''}"


def score(a: Profile, b: Profile) -> Score | None:
    """The pair's score, or None when it cannot be one person or the names are too far apart."""
    if a.sex != b.sex and "unknown" not in (a.sex, b.sex):
        return None
    if a.age is not None and b.age is not None and abs(a.age - b.age) > AGE_SPREAD:
        return None
    if a.child is not None and b.child is not None and a.child != b.child and (a.age is None or b.age is None):
        return None  # a child by one report and an adult by the other (ages close across 18 may still be one)
    days = abs(a.death - b.death) if a.death is not None and b.death is not None else None
    if days is not None and days > DEATH_SPREAD:
        return None
    name = name_similarity(a.tokens, b.tokens)
    if name < NAME_GATE:
        return None
    clues = ["same normalized name" if a.tokens == b.tokens else f"similar names ({name:.2f})"]
    weights: list[tuple[float, float]] = []  # (agreement 0..1, weight)
    if days is not None:
        weights.append((1.0 if days == 0 else 0.8 if days <= 3 else 0.5 if days <= 31 else 0.2, 2))
        clues.append("same date of death" if days == 0 else f"dates of death {_count(days, 'day')} apart")
    if a.governorate_of_death and b.governorate_of_death:
        same = a.governorate_of_death == b.governorate_of_death
        weights.append((1.0 if same else 0.0, 3))  # where a person died is rarely reported wrong
        clues.append("same governorate of death" if same else "different governorates of death")
    if a.sex == b.sex and a.sex != "unknown":
        weights.append((1.0, 1))
        clues.append("same sex")
    if a.age is not None and b.age is not None:
        spread = abs(a.age - b.age)
        weights.append((1.0 if spread <= 1 else 0.6, 1))
        clues.append("same age" if spread == 0 else f"ages {_count(spread, 'year')} apart")
    if a.incident_id == b.incident_id:
        weights.append((1.0, 1))
        clues.append("same incident")
    context = sum(v * w for v, w in weights) / sum(w for _, w in weights) if weights else 0.5
    total = 0.6 * name + 0.4 * context
    return Score(round(total * 1000), tuple(clues))


def _keys(p: Profile) -> Iterator[tuple[str, ...]]:
    """A profile's blocking keys: every two of its name words; one word with the date of death."""
    words = sorted(set(p.tokens))
    for pair in combinations(words, 2):
        yield ("p", *pair)
    if len(words) == 1:
        yield ("w", words[0])
    if p.date_of_death:
        for word in words:
            yield ("d", word, p.date_of_death)


_REFINE: tuple[Callable[[Profile], str | None], ...] = (
    lambda p: p.governorate_of_death,
    lambda p: p.date_of_death[:7] if p.date_of_death else None,
    lambda p: p.date_of_death,
)


def _split(members: list[int], profiles: list[Profile], level: int) -> Iterator[list[int]]:
    if len(members) <= BLOCK_CAP:
        yield members
        return
    if level == len(_REFINE):  # still too big after every refinement: compare in slices, never all at once
        for start in range(0, len(members), BLOCK_CAP):
            yield members[start : start + BLOCK_CAP]
        return
    groups: dict[str | None, list[int]] = defaultdict(list)
    for i in members:
        groups[_REFINE[level](profiles[i])].append(i)
    for group in groups.values():
        yield from _split(group, profiles, level + 1)


def pairs(profiles: list[Profile], only: Iterable[str] | None = None) -> set[tuple[int, int]]:
    """Index pairs (i < j) worth scoring: from shared blocks; with `only` (victim ids), pairs involving them."""
    blocks: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, p in enumerate(profiles):
        for key in _keys(p):
            blocks[key].append(i)
    wanted = {i for i, p in enumerate(profiles) if p.id in set(only)} if only is not None else None
    found: set[tuple[int, int]] = set()
    for members in blocks.values():
        if len(members) < 2 or (wanted is not None and not wanted.intersection(members)):
            continue
        if wanted is not None:  # one victim against its blocks: no need to split, it is one row of the block
            for w in wanted.intersection(members):
                found.update((min(w, j), max(w, j)) for j in members if j != w)
            continue
        for block in _split(members, profiles, 0):
            found.update(combinations(block, 2))  # members are in index order, so i < j
    return found


def candidates(profiles: list[Profile], skip: set[tuple[str, str]], only: Iterable[str] | None = None
               ) -> list[tuple[str, str, Score]]:
    """Pairs (ids in table order) scoring at least `SUGGEST`, best first; pairs in `skip` are not scored."""
    out: list[tuple[str, str, Score]] = []
    floor = SUGGEST * 1000
    for i, j in pairs(profiles, only):
        a, b = profiles[i], profiles[j]
        found = score(a, b)
        if found is None or found.value < floor:
            continue
        ids = (a.id, b.id) if a.id < b.id else (b.id, a.id)
        if ids not in skip:
            out.append((*ids, found))
    out.sort(key=lambda c: (-c[2].value, c[0], c[1]))
    return out
