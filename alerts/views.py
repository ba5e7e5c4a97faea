"""Budgets, the anomaly rule and the webhook (Company Settings, admins) and notifications
(every member, their own)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.permissions import WorkspaceRequest, workspace_view
from alerts import services, webhooks
from alerts.forms import AnomalyRuleForm, BudgetForm, WebhookForm
from alerts.models import AnomalyRule, Budget, Mute, Webhook


def _budgets_url(request: WorkspaceRequest) -> str:
    return reverse("alerts:budgets", kwargs={"ws": request.workspace.slug})


@workspace_view(admin=True)
def budget_list(request: WorkspaceRequest) -> HttpResponse:
    states = services.budget_states(request.workspace)
    return render(request, "alerts/budgets.html", {"settings_section": "budgets", "budgets": states})


def _budget_form(request: WorkspaceRequest, instance: Budget | None = None) -> HttpResponse:
    form = BudgetForm(request.POST or None, instance=instance, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Saved the budget {saved}.")
        return redirect(_budgets_url(request))
    return render(request, "alerts/budget_form.html", {"settings_section": "budgets", "form": form, "budget": instance})


@workspace_view(admin=True)
def budget_create(request: WorkspaceRequest) -> HttpResponse:
    return _budget_form(request)


@workspace_view(admin=True)
def budget_edit(request: WorkspaceRequest, pk: int) -> HttpResponse:
    return _budget_form(request, get_object_or_404(request.workspace.budgets, pk=pk))


@workspace_view(admin=True)
def budget_delete(request: WorkspaceRequest, pk: int) -> HttpResponse:
    budget = get_object_or_404(request.workspace.budgets, pk=pk)
    if request.method == "POST":
        budget.delete()
        messages.success(request, f"Deleted the budget {budget}.")
        return redirect(_budgets_url(request))
    return render(request, "alerts/budget_delete.html", {"settings_section": "budgets", "budget": budget})


def _set_mute(request: WorkspaceRequest, **target: Any) -> None:
    """Mute the alerts of `target` (budget= or integration=) when the form says mute=1, else unmute them."""
    if request.POST.get("mute") == "1":
        Mute.objects.get_or_create(workspace=request.workspace, **target)
    else:
        Mute.objects.filter(workspace=request.workspace, **target).delete()


@workspace_view(admin=True)
def budget_mute(request: WorkspaceRequest, pk: int) -> HttpResponse:
    budget = get_object_or_404(request.workspace.budgets, pk=pk)  # another workspace's: 404 before 405
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    _set_mute(request, budget=budget)
    return redirect(_budgets_url(request))


@workspace_view(admin=True)
def integration_mute(request: WorkspaceRequest, pk: int) -> HttpResponse:
    integration = get_object_or_404(request.workspace.integrations, pk=pk)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    _set_mute(request, integration=integration)
    return redirect(reverse("alerts:notifications", kwargs={"ws": request.workspace.slug}))


@workspace_view
def notifications(request: WorkspaceRequest) -> HttpResponse:
    items = list(request.workspace.notifications.filter(user=request.user).select_related("alert")[:200])
    integrations = []
    if request.membership.is_admin:
        muted = set(
            request.workspace.alert_mutes.filter(integration__isnull=False).values_list("integration_id", flat=True)
        )
        integrations = [(i, i.pk in muted) for i in request.workspace.integrations.live().order_by("name", "pk")]
    return render(
        request,
        "alerts/notifications.html",
        {
            "notifications": items,
            "unread": sum(1 for n in items if n.read_at is None),
            # Admins mute (or unmute) one integration's alerts here, before or after it raised any.
            "integration_mutes": integrations,
        },
    )


@workspace_view
@require_POST
def notifications_read(request: WorkspaceRequest) -> HttpResponse:
    mine = request.workspace.notifications.filter(user=request.user, read_at__isnull=True)
    if request.POST.get("id", "").isdigit():
        mine = mine.filter(pk=int(request.POST["id"]))
    mine.update(read_at=timezone.now())
    return redirect(reverse("alerts:notifications", kwargs={"ws": request.workspace.slug}))


# ------------------------------------------------------------------ anomaly rule
@workspace_view(admin=True)
def anomaly_rule(request: WorkspaceRequest) -> HttpResponse:
    instance = AnomalyRule.objects.filter(workspace=request.workspace).first() or AnomalyRule(
        workspace=request.workspace
    )
    form = AnomalyRuleForm(request.POST or None, instance=instance, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Saved the anomaly rule; it applies from the next evaluation.")
        return redirect(reverse("alerts:anomaly_rule", kwargs={"ws": request.workspace.slug}))
    return render(
        request,
        "alerts/anomaly_rule.html",
        {"settings_section": "anomaly_rule", "form": form, "defaults": AnomalyRule()},
    )


# ------------------------------------------------------------------ webhook
class _ShownOnce(str):
    """The new secret in the page's context: Django's template debug log prints the whole
    context (with repr) when a lookup misses, so its repr never shows the value."""

    def __repr__(self) -> str:
        return "'[secret]'"


def _webhook_page(
    request: WorkspaceRequest, form: WebhookForm, *, new_secret: str = "", status: int = 200
) -> HttpResponse:
    webhook = Webhook.objects.filter(workspace=request.workspace).first()
    deliveries = list(webhook.deliveries.select_related("alert")[:50]) if webhook else []
    context = {
        "settings_section": "webhook",
        "webhook": webhook,
        "form": form,
        "new_secret": new_secret,
        "deliveries": deliveries,
        "signature_header": webhooks.SIGNATURE_HEADER,
        "max_attempts": webhooks.WEBHOOK_MAX_ATTEMPTS,
    }
    return render(request, "alerts/webhook.html", context, status=status)


@workspace_view(admin=True)
def webhook(request: WorkspaceRequest) -> HttpResponse:
    """GET: the webhook, its secret's last four characters and its delivery log. POST: create or
    replace it; the new secret is on this response only (never stored in a message or session)."""
    if request.method != "POST":
        return _webhook_page(request, WebhookForm())
    form = WebhookForm(request.POST)
    if not form.is_valid():
        return _webhook_page(request, form, status=400)
    try:
        _, secret = webhooks.webhook_save(workspace=request.workspace, url=form.cleaned_data["url"])
    except webhooks.WebhookURLError as error:
        form.add_error("url", str(error))
        return _webhook_page(request, form, status=400)
    return _webhook_page(request, WebhookForm(), new_secret=_ShownOnce(secret))


@workspace_view(admin=True)
def webhook_delete(request: WorkspaceRequest) -> HttpResponse:
    hook = get_object_or_404(Webhook, workspace=request.workspace)
    if request.method == "POST":
        webhooks.webhook_delete(workspace=request.workspace)
        messages.success(request, "Deleted the webhook and its delivery log.")
        return redirect(reverse("alerts:webhook", kwargs={"ws": request.workspace.slug}))
    return render(request, "alerts/webhook_delete.html", {"settings_section": "webhook", "webhook": hook})


@workspace_view(admin=True)
@require_POST
def webhook_test(request: WorkspaceRequest) -> HttpResponse:
    hook = get_object_or_404(Webhook, workspace=request.workspace)
    payload = webhooks.ping_payload(request.workspace, now=timezone.now())
    webhooks.webhook_enqueue(webhook_id=hook.pk, payload=payload)
    messages.info(request, "Sent a test event (ping); its attempts appear in the delivery log below.")
    return redirect(reverse("alerts:webhook", kwargs={"ws": request.workspace.slug}))
