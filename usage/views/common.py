"""What the usage pages share: page-or-partial rendering, optional links, chart payloads."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.http import HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.cache import patch_vary_headers

from accounts.permissions import WorkspaceRequest


def wants_partial(request: WorkspaceRequest) -> bool:
    """An htmx swap gets the fragment; a history restore (cache miss on Back) needs the page."""
    htmx = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.history_restore_request


def render_page(request: WorkspaceRequest, template: str, partial: str, context: dict[str, Any]) -> HttpResponse:
    """The whole page, or its `partial` for htmx; one URL serves both, so it can be shared."""
    name = f"{template}#{partial}" if wants_partial(request) else template
    response = render(request, name, context)
    # The same URL answers with a fragment or a page: caches must keep them apart.
    patch_vary_headers(response, ("HX-Request",))
    return response


def optional_url(name: str, **kwargs: Any) -> str | None:
    """A link to a page another part of the app may not provide (yet): None if it is missing."""
    try:
        return reverse(name, kwargs=kwargs)
    except NoReverseMatch:
        return None


def as_number(value: Decimal | int | None) -> float | None:
    """Chart values: JSON numbers, not the strings DjangoJSONEncoder makes of Decimals."""
    return None if value is None else float(value)


def payload_table(payload: dict[str, Any]) -> dict[str, Any]:
    """A chart payload as a table (labels down, datasets across): the chart without JavaScript."""
    datasets = payload["datasets"]
    return {
        "columns": [d["label"] for d in datasets],
        "rows": [(label, [d["data"][i] for d in datasets]) for i, label in enumerate(payload["labels"])],
    }
