"""Company Settings → Pricing (admins): the overrides, the price each model's estimates use and
where it comes from, reported cost beside the estimate per provider and month, unpriced usage,
and the progress of the recompute a change starts. Tenant-first like every settings page."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from accounts.permissions import WorkspaceRequest, workspace_view
from doow.jobs import job_progress
from integrations.providers.registry import PROVIDERS
from usage.pricing import services
from usage.pricing.forms import METRIC_LABELS, PriceOverrideForm
from usage.pricing.overrides import load_overrides
from usage.pricing.prices import price_data_version
from usage.pricing.queries import pricing_model_prices, pricing_reported_vs_estimated, pricing_unpriced_usage
from usage.rollups import local_day, zone_of

TEMPLATE = "usage/settings/pricing.html"
RECENT = timedelta(days=31)  # models with usage this recent are listed (raw rows: keep it short)


def _url(request: WorkspaceRequest, name: str, **kwargs: Any) -> str:
    return reverse(f"usage_settings:{name}", kwargs={"ws": request.workspace.slug, **kwargs})


def _progress_context(request: WorkspaceRequest) -> dict[str, Any]:
    job = services.pricing_recompute_latest(workspace=request.workspace)
    active, stalled = job_progress(job)
    retry_at = services.pricing_recompute_retry_at(job) if job is not None else None
    return {"job": job, "job_active": active, "job_stalled": stalled, "job_retry_at": retry_at}


def _price_day(request: WorkspaceRequest, today: date) -> date:
    """The UTC day whose prices the per-model table shows (`?on=YYYY-MM-DD`, today by default):
    an estimate is priced on its bucket's UTC day, so this is the price every estimate of that
    day used. A malformed or future day shows today."""
    try:
        day = date.fromisoformat(request.GET.get("on") or today.isoformat())
    except ValueError:
        return today
    return today if day.year < 2000 else min(day, today)


def _context(request: WorkspaceRequest, form: PriceOverrideForm) -> dict[str, Any]:
    workspace = request.workspace
    now = timezone.now()
    since = now - RECENT
    names = {slug: p.name for slug, p in PROVIDERS.items()}
    today = now.astimezone(UTC).date()
    price_day = _price_day(request, today)
    day_end = datetime.combine(price_day + timedelta(days=1), time(0), tzinfo=UTC)
    models = pricing_model_prices(
        workspace=workspace,
        overrides=load_overrides(workspace_id=workspace.pk),
        on=min(now, day_end - timedelta(seconds=1)),
        since=day_end - RECENT,
        until=day_end,
    )
    # This month and the two before it, in the workspace's calendar.
    first_day = (local_day(now, zone_of(workspace)).replace(day=1) - timedelta(days=62)).replace(day=1)
    return {
        "settings_section": "pricing",
        "form": form,
        "overrides": workspace.price_overrides.all(),
        "models": models,
        "price_day": price_day,
        "price_data": price_data_version(),
        "price_today": today,
        "comparison": pricing_reported_vs_estimated(workspace=workspace, first_day=first_day),
        "unpriced": pricing_unpriced_usage(workspace=workspace, since=since),
        "provider_names": names,
        "metric_labels": METRIC_LABELS,
        **_progress_context(request),
    }


@workspace_view(admin=True)
def pricing(request: WorkspaceRequest) -> HttpResponse:
    form = PriceOverrideForm(initial={"effective_from": services.override_effective_default()})
    return render(request, TEMPLATE, _context(request, form))


@workspace_view(admin=True)
def pricing_override_add(request: WorkspaceRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = PriceOverrideForm(request.POST)
    if not form.is_valid():
        return render(request, TEMPLATE, _context(request, form))  # the form with its errors, as every settings form
    fields = {k: v for k, v in form.cleaned_data.items()}
    services.price_override_create(workspace=request.workspace, user=request.user, **fields)
    messages.success(request, "Override saved; estimates are being recomputed.")
    return redirect(_url(request, "pricing"))


@workspace_view(admin=True)
def pricing_override_delete(request: WorkspaceRequest, pk: int) -> HttpResponse:
    override = get_object_or_404(request.workspace.price_overrides, pk=pk)  # another workspace's id: 404 first
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    services.price_override_delete(override=override)
    messages.success(request, "Override deleted; estimates are being recomputed.")
    return redirect(_url(request, "pricing"))


@workspace_view(admin=True)
def pricing_progress(request: WorkspaceRequest) -> HttpResponse:
    """The recompute progress panel, polled every second while a job is queued or running."""
    if not request.htmx:
        return redirect(_url(request, "pricing"))
    return render(request, f"{TEMPLATE}#progress", _progress_context(request))
