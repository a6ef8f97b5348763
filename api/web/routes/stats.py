"""The statistics page: `evidence stats` by month, party and governorate, each a table with a chart beside it.

The numbers are the statistics service's, called as GET /v1/stats calls it
(the caller's role, so a restricted case's victims are not counted for whom
it hides them; the same period and date filters). The table is the page's
real content and its accessible form; the chart (Chart.js, `stats.js`) draws
the same numbers from a JSON block and is hidden from assistive technology.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from api.http.routes.records import who
from api.web.forms import csrf_ok
from api.web.i18n import N_
from api.web.render import language_of, render
from api.web.routes.records import choices, labeller
from archive.services.errors import Invalid

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_ok)])

DIMENSIONS = ("month", "party", "governorate")  # the tables of a monthly report, in the order shown
TITLES = {"month": N_("Civilian deaths by month"), "party": N_("Civilian deaths by party"),
          "governorate": N_("Civilian deaths by governorate")}
KEY_HEADS = {"month": N_("Month"), "party": N_("Party"), "governorate": N_("Governorate")}
COLUMNS = (("civilians", N_("Civilians")), ("children", N_("Children")), ("women", N_("Women")),
           ("torture", N_("Torture")), ("medical", N_("Medical staff")), ("media", N_("Media workers")),
           ("civil_defence", N_("Civil defence")), ("massacres", N_("Massacres")),
           ("facility_attacks", N_("Facility attacks")))
CHARTED = ("civilians", "children", "women")  # the series a chart draws (the table has every column)
GROUPS = {"main": N_("Main parties"), "other": N_("Other parties")}


BAD_DAY = N_("This is not a real date: write it as YYYY-MM-DD, for example 2024-03-15.")
BAD_DATE_KIND = N_("Choose the date of death or the date documented.")


def _filter_problems(filters: dict[str, str]) -> dict[str, str]:
    """Every problem of the period form at once (the service would say only the first), in its order."""
    from archive.records.common import check_day

    errors: dict[str, str] = {}
    for name in ("from", "to"):
        if filters[name]:
            try:
                check_day(filters[name], name)
            except Invalid:
                errors[name] = BAD_DAY
    if filters["date"] not in ("documented", "death"):
        errors["date"] = BAD_DATE_KIND
    return errors


def _field_of(message: str) -> str:
    """The filter an `Invalid` of the statistics service is about (its messages start with the field's name)."""
    for field in ("from", "to", "date"):
        if message.startswith(f"{field}:") or message.startswith(f"{field} "):
            return field
    return "from"


VOCABULARIES = {"party": "parties", "governorate": "governorates", "type": "incident_types"}


def _label(term: Callable[[str, Any], str], by: str, key: Any, unknown: str) -> str:
    """A row's key as the reader knows it: the vocabulary's label in the page's language (a joint attribution's
    parties each by label, joined by " + "), the month as it is; `unknown` for no key."""
    if key is None or key == "":
        return unknown
    vocabulary = VOCABULARIES.get(by)
    if vocabulary is None:
        return str(key)
    parts = str(key).split("+") if by == "party" else [str(key)]
    return " + ".join(term(vocabulary, part) for part in parts)


def _labelled(result: dict[str, Any], term: Callable[[str, Any], str], unknown: str) -> dict[str, Any]:
    by = result["by"]
    rows = [{**row, "label": _label(term, by, row[by], unknown)} for row in result["rows"]]
    return {**result, "rows": rows}


def _chart(result: dict[str, Any]) -> dict[str, Any]:
    return {"labels": [row["label"] for row in result["rows"]],
            "series": {key: [row[key] for row in result["rows"]] for key in CHARTED}}


@router.get("/stats", response_class=HTMLResponse)
def stats_page(request: Request, date_from: str | None = Query(None, alias="from", max_length=32),
               date_to: str | None = Query(None, alias="to", max_length=32),
               date: str = Query("documented", max_length=16)) -> HTMLResponse:
    """The three tables for the period; a bad filter re-renders the form with the message beside it (422)."""
    from archive.services.stats import statistics

    _ = language_of(request).gettext
    archive, role = who(request)
    filters = {"from": date_from or "", "to": date_to or "", "date": date}
    tables: list[dict[str, Any]] = []
    errors = _filter_problems(filters)
    try:
        for by in DIMENSIONS if not errors else ():
            result = statistics(archive, role=role, date_from=date_from or None, date_to=date_to or None,
                                date=date, by=by)
            tables.append({"by": by, "result": result})
    except Invalid as exc:  # what only the service tells (a period ending before it starts)
        errors[_field_of(str(exc))] = str(exc)
        tables = []
    unknown = _("(unknown)")
    if tables:
        term = labeller(request, choices(archive, role))
        tables = [{**table, "result": _labelled(table["result"], term, unknown)} for table in tables]
    charts = {table["by"]: _chart(table["result"]) for table in tables}
    series = {key: _(label) for key, label in COLUMNS if key in CHARTED}
    return render(request, "stats.html", status_code=422 if errors else 200, tables=tables, filters=filters,
                  errors=errors, charts={"charts": charts, "series": series}, titles=TITLES, key_heads=KEY_HEADS,
                  columns=COLUMNS, groups=GROUPS, unknown=unknown)
