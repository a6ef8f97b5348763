"""The rules a record must satisfy, checked before anything is written (one place for forms and imports).

Each `*_state` function takes request fields named as the interchange
columns (`evidence import`) and returns the record's checked state, or raises
`Invalid` naming the field and why. Imports call them row by row and report
the line; services call them for one record.
"""

from __future__ import annotations

import re
from typing import Any

from archive.records.common import (
    check_choice,
    check_coordinate,
    check_day,
    check_ref,
    check_started,
    check_text,
)
from archive.records.store import is_child
from archive.records.vocab import AGE_GROUPS, CONSENT_ANSWERS, FACILITY_DAMAGE, PRECISIONS, SEXES, Vocab
from archive.services.errors import Invalid

FIELDS = ("ref", "type", "started_at", "started_precision", "governorate", "district", "place", "neighbourhood",
          "latitude", "longitude", "controlled_by", "attribution", "weapon", "facility_damage", "narrative")
REQUIRED = ("ref", "type", "started_at", "governorate", "attribution")


def parse_attribution(vocab: Vocab, value: Any, what: str = "attribution") -> tuple[str, str]:
    """(party keys sorted and joined by "+", kind): `single`, `joint` (two or more) or `other` (an "other
    parties" category alone)."""
    parts = [str(p).strip() for p in (value if isinstance(value, list) else str(value or "").split("+"))]
    if not any(parts):
        raise Invalid(f"{what}: a party key is required (keys joined by '+' for a joint attribution)")
    if len(parts) > 1 and not all(parts):  # `+sdf`, `sdf+`: a party left out (a typo is likelier than not)
        raise Invalid(f"{what}: {'+'.join(parts)!r} has an empty party (keys joined by '+')")
    twice = sorted({p for p in parts if parts.count(p) > 1})
    if twice:  # `sdf+sdf`: likely `sdf+sna` mistyped, not one party
        raise Invalid(f"{what}: {', '.join(twice)} given twice in {'+'.join(parts)!r}")
    keys = sorted(vocab.check("parties", p, what) for p in parts)
    if len(keys) > 1:
        return "+".join(keys), "joint"
    return keys[0], "other" if vocab.group(keys[0]) == "other" else "single"


def incident_state(vocab: Vocab, fields: dict[str, Any]) -> dict[str, Any]:
    """A checked incident state from request fields (the interchange columns); `Invalid` says which field."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(unknown)}")
    for name in REQUIRED:
        if fields.get(name) in (None, ""):
            raise Invalid(f"{name}: required")
    started_at, timed = check_started(fields["started_at"])
    _plausible(started_at, "started_at")
    precision = _stripped(fields.get("started_precision")) or ("minute" if timed else "day")
    check_choice(precision, PRECISIONS, "started_precision")
    if precision in ("hour", "minute") and not timed:
        raise Invalid(f"started_precision: {precision!r} needs a time of day in started_at (YYYY-MM-DDTHH:MM)")
    attribution, _kind = parse_attribution(vocab, fields["attribution"])
    latitude = check_coordinate(_number(fields.get("latitude"), "latitude"), "latitude", 90)
    longitude = check_coordinate(_number(fields.get("longitude"), "longitude"), "longitude", 180)
    if (latitude is None) != (longitude is None):
        raise Invalid("latitude and longitude: give both or neither")
    damage = _stripped(fields.get("facility_damage")) or None
    if damage is not None:
        check_choice(damage, FACILITY_DAMAGE, "facility_damage")
    return {
        "ref": check_ref(fields["ref"], "ref"),
        "type": vocab.check("incident_types", str(fields["type"]).strip(), "type"),
        "started_at": started_at,
        "started_precision": precision,
        "governorate": vocab.check("governorates", str(fields["governorate"]).strip(), "governorate"),
        "district": check_text(fields.get("district"), "district", 255),
        "place": check_text(fields.get("place"), "place", 255),
        "neighbourhood": check_text(fields.get("neighbourhood"), "neighbourhood", 255),
        "latitude": latitude,
        "longitude": longitude,
        "controlled_by": (vocab.check("parties", str(fields["controlled_by"]).strip(), "controlled_by")
                          if fields.get("controlled_by") else None),
        "attribution": attribution,
        "weapon": vocab.check("weapons", str(fields["weapon"]).strip(), "weapon") if fields.get("weapon") else None,
        "facility_damage": damage,
        "narrative": check_text(fields.get("narrative"), "narrative"),
    }


FIRST_YEAR, LAST_YEAR = 1900, 2100  # a date outside is a typo (0001-01-01, 9999-12-31), not a record
_DECIMAL = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _plausible(day: str, what: str) -> str:
    """A date (or date and time) whose year is FIRST_YEAR..LAST_YEAR."""
    if not FIRST_YEAR <= int(day[:4]) <= LAST_YEAR:
        raise Invalid(f"{what}: {day!r} is not a plausible date (years {FIRST_YEAR} to {LAST_YEAR})")
    return day


def _number(value: Any, what: str) -> Any:
    """A coordinate as a file gives it: a JSON number, or decimal digits (no `true`, `1_0`, `1e3`, `nan`)."""
    if value is None or value == "":
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Invalid(f"{what}: {value!r} is not a number")
    if isinstance(value, str) and not _DECIMAL.match(value.strip()):
        raise Invalid(f"{what}: {value!r} is not a number (decimal digits, like 35.93)")
    return value.strip() if isinstance(value, str) else value


VICTIM_FIELDS = ("ref", "incident_ref", "name", "name_withheld", "sex", "age", "age_group", "civilian", "professions",
                 "died_under_torture", "governorate_of_death", "governorate_of_origin", "date_of_death",
                 "date_documented", "family_consent", "consent_date", "consent_recorded_by")
VICTIM_REQUIRED = ("ref", "incident_ref", "sex", "civilian", "date_documented")
MAX_AGE = 130


def check_bool(value: Any, what: str, default: bool | None = None) -> bool:
    """`true` / `false` (a JSON boolean too); empty gives `default` when there is one."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    if text == "" and default is not None:
        return default
    if text not in ("true", "false"):
        raise Invalid(f"{what}: {value!r} is not true or false")
    return text == "true"


def check_age(value: Any) -> int | None:
    if value is None or value == "":
        return None
    text = value if isinstance(value, int) else str(value).strip()
    if isinstance(value, bool) or not (isinstance(text, int) or text.isdecimal()):  # `²` is a digit, not decimal
        raise Invalid(f"age: {value!r} is not a whole number of years")
    age = int(text)
    if age > MAX_AGE:
        raise Invalid(f"age: {age} is not a possible age")
    return age


def victim_state(vocab: Vocab, fields: dict[str, Any], incident_id: str) -> dict[str, Any]:
    """A checked victim state (`incident_ref` already resolved to `incident_id` by the caller).

    The consent columns are not part of it: they become a consent record (`consent_state`).
    """
    unknown = sorted(set(fields) - set(VICTIM_FIELDS))
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(unknown)}")
    for name in VICTIM_REQUIRED:
        if fields.get(name) in (None, ""):
            raise Invalid(f"{name}: required")
    age = check_age(fields.get("age"))
    group = _stripped(fields.get("age_group")) or None
    if group is not None:
        check_choice(group, AGE_GROUPS, "age_group")
        if age is not None and group != "unknown" and (group == "child") != is_child(age, None):
            raise Invalid(f"age_group: {group!r} disagrees with age {age} (a child is under 18)")
    documented = _plausible(check_day(fields["date_documented"], "date_documented"), "date_documented")
    died = _plausible(check_day(fields["date_of_death"], "date_of_death"), "date_of_death") \
        if fields.get("date_of_death") else None
    if died is not None and died > documented:
        raise Invalid(f"date_of_death: {died} is after the date documented ({documented})")
    raw = fields.get("professions") or []
    parts = raw if isinstance(raw, list) else str(raw).split(";")
    professions = sorted({vocab.check("professions", str(p).strip(), "professions") for p in parts if str(p).strip()})
    person = check_text(fields.get("name"), "name", 255)
    return {
        "ref": check_ref(fields["ref"], "ref"),
        "incident_id": incident_id,
        "name": person,
        "name_withheld": check_bool(fields.get("name_withheld"), "name_withheld", False),
        "sex": check_choice(str(fields["sex"]).strip(), SEXES, "sex"),
        "age": age,
        "age_group": group,
        "civilian": check_bool(fields["civilian"], "civilian"),
        "professions": professions,
        "died_under_torture": check_bool(fields.get("died_under_torture"), "died_under_torture", False),
        "governorate_of_death": (vocab.check("governorates", str(fields["governorate_of_death"]).strip(),
                                             "governorate_of_death") if fields.get("governorate_of_death") else None),
        "governorate_of_origin": (vocab.check("governorates", str(fields["governorate_of_origin"]).strip(),
                                              "governorate_of_origin")
                                  if fields.get("governorate_of_origin") else None),
        "date_of_death": died,
        "date_documented": documented,
        "status": "active",
        "merged_into": None,
    }


def consent_state(victim_id: str, scope: str, answer: Any, given_on: Any, recorded_by: Any,
                  document: Any = None, note: Any = None) -> dict[str, Any]:
    """A checked consent record for one scope: `yes`, `no`, `not_asked` (a withdrawal is `withdrawn`)."""
    from archive.records.vocab import CONSENT_SCOPES

    check_choice(scope, CONSENT_SCOPES, "scope")
    answer = _stripped(answer)
    if answer != "withdrawn":
        check_choice(answer, CONSENT_ANSWERS, "family_consent")
    day = _plausible(check_day(given_on, "consent_date"), "consent_date") if given_on not in (None, "") else None
    if answer in ("yes", "withdrawn") and day is None:
        raise Invalid(f"consent_date: required when the family's answer is {answer!r}")
    who = check_text(recorded_by, "consent_recorded_by", 255)
    if answer == "yes" and who is None:
        raise Invalid("consent_recorded_by: say who recorded the family's consent")
    return {"victim_id": victim_id, "scope": scope, "status": answer, "given_on": day, "recorded_by": who,
            "document": check_text(document, "document", 1000), "note": check_text(note, "note", 5000)}
