"""The dashboard (`/`): what the archive holds and whether it is well; a contributor's own recent uploads.

Custodians, investigators and auditors see the same kind of figures
(`archive.services.dashboard.overview`: nothing personal in them), each of
them without the items a restricted case hides from that caller (counts,
site figures, fixity problems alike). A contributor sees nothing of the
archive: only what its own session uploaded in the last hour
(`archive.services.recent_uploads`), and the others see no upload names at
all (they are a contributor's labels, not the archive's figures).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.http.routes.records import who
from api.web.forms import csrf_ok
from api.web.render import render
from api.web.routes.items import labels
from archive.roles import Role
from archive.services.errors import Locked

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_ok)])


@router.get("/")
def dashboard(request: Request) -> Response:
    """The dashboard for the caller's role."""
    from archive.services.dashboard import overview
    from archive.services.recent_uploads import recent_uploads

    archive, role = who(request)
    uploads, locked = [], False
    if role != Role.AUDITOR:  # an auditor uploads nothing; the others see their own session's uploads only
        try:
            uploads = recent_uploads(archive, request.state.caller)
        except Locked:
            locked = True
    if role == Role.CONTRIBUTOR:
        return render(request, "dashboard.html", contributor=True, uploads=uploads, uploads_locked=locked,
                      **labels(request))
    figures = overview(archive, role=role)
    age = figures.checkpoint["age_seconds"] if figures.checkpoint else None
    return render(request, "dashboard.html", contributor=False, figures=figures, uploads=uploads,
                  uploads_locked=locked, checkpoint_age=_age_text(request, age), **labels(request))


def _age_text(request: Request, seconds: float | None) -> str | None:
    """A checkpoint's age in the largest whole unit (minutes, hours or days)."""
    from api.web.render import language_of

    if seconds is None:
        return None
    lang = language_of(request)
    minutes = int(seconds // 60)
    if minutes < 1:
        return lang.gettext("less than a minute")
    if minutes < 60:
        return lang.gettext("%(num)d minutes") % {"num": minutes}
    hours = minutes // 60
    if hours < 48:
        return lang.gettext("%(num)d hours") % {"num": hours}
    days = hours // 24
    return lang.gettext("%(num)d days") % {"num": days}
