"""Download the usage in view as CSV: docs/architecture.md columns or FOCUS 1.2 (any member; outsiders 404).

GET w/<ws>/usage/export/?format=csv|focus plus the explorer's filters (usage.queries.filtered:
date_from, date_to, provider, integration, application, license, model, project, region,
metric), so "export what I'm looking at" is a link with the page's query string. The body is a
StreamingHttpResponse fed by a generator over the database cursor: memory stays flat for
millions of rows, and the first bytes leave before the last row is read.

A date that does not parse, lies outside the dates Doow accepts (usage.dates) or makes a
backwards range is a 400 that says so: a file is not a page where an ignored filter shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from django.db.models import QuerySet
from django.http import HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.views.decorators.http import require_GET

from accounts.permissions import WorkspaceRequest, workspace_view
from usage.export import export_order
from usage.export_copy import usage_csv_stream
from usage.export_focus_copy import usage_focus_stream
from usage.forms import DateRangeForm
from usage.models import UsageRecord
from usage.queries import filtered, parse_filters

PieceSource = Callable[[QuerySet[UsageRecord]], Iterator[bytes | str]]


# format → (pieces of the body, file name stem): the name says which layout the file has.
# Both are COPY … TO STDOUT on PostgreSQL (usage/export_copy.py, usage/export_focus_copy.py),
# the Python writer on SQLite.
FORMATS: dict[str, tuple[PieceSource, str]] = {
    "csv": (usage_csv_stream, "doow-usage"),
    "focus": (usage_focus_stream, "doow-usage-focus"),
}


def export_filename(*, stem: str, workspace_slug: str, date_from: object, date_to: object, today: datetime) -> str:
    """e.g. doow-usage-acme-2026-01-01_2026-01-31.csv; without dates, the day of the export."""
    if date_from or date_to:
        span = f"{date_from or 'start'}_{date_to or today.date()}"
    else:
        span = str(today.date())
    return f"{stem}-{workspace_slug}-{span}.csv"


@workspace_view  # first: an outsider gets 404 whatever the method
@require_GET
def usage_export(request: WorkspaceRequest) -> HttpResponse | StreamingHttpResponse:
    fmt = request.GET.get("format") or "csv"
    if fmt not in FORMATS:
        return HttpResponseBadRequest(
            f"Unknown export format {fmt!r}: use format=csv or format=focus.", content_type="text/plain"
        )
    pieces, stem = FORMATS[fmt]
    dates = DateRangeForm(request.GET)
    if not dates.is_valid():
        problems = [
            f"{name}: {' '.join(error.messages)}" for name, errors in dates.errors.as_data().items() for error in errors
        ]
        return HttpResponseBadRequest("No export: " + " ".join(problems), content_type="text/plain; charset=utf-8")
    filters = parse_filters(request.GET)
    records = export_order(filtered(request.workspace, filters))
    response = StreamingHttpResponse(pieces(records), content_type="text/csv; charset=utf-8")
    name = export_filename(
        stem=stem,
        workspace_slug=request.workspace.slug,
        date_from=filters.date_from,
        date_to=filters.date_to,
        today=datetime.now(UTC),
    )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    # Usage is tenant data: never kept by a shared cache or the browser's.
    response["Cache-Control"] = "private, no-store"
    return response
