"""The world every attack runs against: a victim workspace full of real objects, another
workspace whose admin attacks it, the identities, and a fingerprint of the whole database.

Every victim object's text carries VICTIM (and the admin-only ones ADMIN_ONLY too), every
outsider object's text OUTSIDER, so "no data of the victim in this answer" is a substring test
that cannot pass by accident: the victim admin's own pages are checked to contain them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import Membership, Workspace
from faults import figures
from integrations.models import Integration, IntegrationEvent, SyncRun
from integrations.providers.base import UsageSample
from usage.models import (
    Application,
    AttributionRule,
    License,
    PriceOverride,
    PricingRecomputeJob,
    ReattributionJob,
    Team,
    UsageImport,
)
from usage.store import usage_store_samples

VICTIM = "victimdata"  # lower case: bodies are searched case-insensitively
ADMIN_ONLY = "adminonly"  # on what only the victim's admins may see (integrations, their events)
OUTSIDER = "outsiderdata"
PASSWORD = "correct-horse-battery-staple"

# Tables a request may legitimately write whoever sends it: the session (login, the remembered
# workspace) and security bookkeeping (failed-login records of a throttling package).
UNFINGERPRINTED = {
    "sessions.session",
    "contenttypes.contenttype",
    "axes.accessattempt",
    "axes.accessfailurelog",
    "axes.accesslog",
}

# Columns that change without anyone's request: signing the sweep's identities in again.
VOLATILE_COLUMNS = {"auth.user": ("last_login",)}


class SweepClient(Client):
    """The test client, counting every request it sends into the suite's figures."""

    def request(self, **request):  # Django's signature
        figures.add("requests")
        return super().request(**request)


def body(response) -> str:  # any Django response
    """The text of a response, streamed or not."""
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


@dataclass
class Tenant:
    workspace: Workspace
    admin: AbstractUser
    member: AbstractUser
    # kind ("integration", "application", …) -> pk of one real object of that kind
    ids: dict[str, int] = field(default_factory=dict)


@dataclass
class World:
    victim: Tenant
    outsider: Tenant
    staff: AbstractUser

    def client(self, user: AbstractUser | None, **kwargs: object) -> SweepClient:
        client = SweepClient(raise_request_exception=False, **kwargs)
        if user is not None:
            client.force_login(user)
        return client


def _user(username: str, *, staff: bool = False) -> AbstractUser:
    user_model = get_user_model()
    if staff:
        return user_model.objects.create_superuser(
            username=username, password=PASSWORD, email=f"{username}@example.com"
        )
    return user_model.objects.create_user(username=username, password=PASSWORD, email=f"{username}@example.com")


def _tenant(slug: str, mark: str) -> Tenant:
    workspace = Workspace.objects.create(name=f"{mark.capitalize()} Corp", slug=slug)
    admin, member = _user(f"{slug}-admin"), _user(f"{slug}-member")
    Membership.objects.create(workspace=workspace, user=admin, role=Membership.Role.ADMIN)
    Membership.objects.create(workspace=workspace, user=member, role=Membership.Role.MEMBER)
    tenant = Tenant(workspace, admin, member)

    integration = Integration(
        workspace=workspace,
        provider="openai",
        name=f"{mark} {ADMIN_ONLY} OpenAI",
        # Nothing listens there: no page of the sweep may need the provider.
        settings={"base_url": "http://127.0.0.1:9/v1", "project_ids": f"proj_{mark}"},
        created_by=admin,
    )
    integration.set_credential({"api_key": f"sk-admin-{mark}-0123456789abcdef0123456789"})
    integration.save()
    importer = Integration(
        workspace=workspace, provider="authress", name=f"{mark} {ADMIN_ONLY} Authress", created_by=admin
    )
    importer.set_credential({"access_key": f"sc_{mark}.kid_{mark}.acc_{mark}.MC4CAQAwBQYDK2VwBCIEIA{mark}"})
    importer.save()

    team = Team.objects.create(workspace=workspace, name=f"{mark} Platform team", cost_centre=f"CC-{mark}")
    application = Application.objects.create(
        workspace=workspace, name=f"{mark} Chatbot", owner=f"{mark} team", team=team
    )
    license_ = License.objects.create(
        workspace=workspace,
        application=application,
        plan_name=f"{mark} Enterprise plan",
        kind=License.Kind.COMMITMENT,
        start_date=date(2026, 1, 1),
        committed_amount=Decimal("1000.00"),
    )
    # Two rules, so "move up" on the second one really moves it.
    AttributionRule.objects.create(
        workspace=workspace, provider="openai", project=f"proj_{mark}-other", application=application, priority=10
    )
    rule = AttributionRule.objects.create(
        workspace=workspace,
        provider="openai",
        model=f"{mark}-gpt*",
        application=application,
        license=license_,
        priority=20,
    )
    run = SyncRun.objects.create(
        integration=integration,
        status=SyncRun.Status.FAILED,
        error_category="rate_limit",
        error=f"{mark} {ADMIN_ONLY}: throttled",
        finished_at=timezone.now(),
    )
    IntegrationEvent.objects.create(
        integration=integration,
        sync_run=run,
        level=IntegrationEvent.Level.WARNING,
        category=IntegrationEvent.Category.RATE_LIMIT,
        message=f"{mark} {ADMIN_ONLY}: the provider throttled the sync",
        hint=f"{mark}: wait",
        http_status=429,
    )
    job = ReattributionJob.objects.create(workspace=workspace, status=ReattributionJob.Status.DONE, total=4, done=4)
    upload = UsageImport.objects.create(
        workspace=workspace,
        integration=integration,
        source=f"{mark}-usage.csv",
        status=UsageImport.Status.FAILED,
        problems=[[2, f"{mark} {ADMIN_ONLY}: quantity is not a number"]],
        problems_total=1,
        finished_at=timezone.now(),
    )
    override = PriceOverride.objects.create(workspace=workspace, kind=PriceOverride.Kind.UNIT_PRICE, provider="openai",
                                            model=f"{mark}-gpt-4o", metric="input_tokens", price=Decimal("2.5"),
                                            effective_from=date(2026, 1, 1), note=f"{mark} {ADMIN_ONLY} contract")  # fmt: skip
    from alerts.models import Alert, AnomalyRule, Budget, Webhook, WebhookDelivery

    budget = Budget.objects.create(workspace=workspace, name=f"{mark} {ADMIN_ONLY} budget", amount=Decimal("100"))
    alert = Alert.objects.create(workspace=workspace, kind=Alert.Kind.BUDGET, key=f"budget:{budget.pk}", budget=budget,
                                 level="warning", title=f"{mark} {ADMIN_ONLY} budget passed 80%",
                                 opened_at=timezone.now(), changed_at=timezone.now())  # fmt: skip
    anomaly_rule = AnomalyRule.objects.create(workspace=workspace)
    # Port 9 (discard) on loopback: nothing listens, so a test send is logged as a refused connection.
    webhook = Webhook.objects.create(workspace=workspace, url=f"http://127.0.0.1:9/{mark}-hook", secret=f"whsec_{mark}-webhook-secret-0000",
                                     secret_hint="0000", created_at=timezone.now())  # fmt: skip
    webhook_delivery = WebhookDelivery.objects.create(webhook=webhook, delivery_id=f"{mark}-delivery", event="alert.opened", alert=alert,
                                                      attempt=1, status_code=200, created_at=timezone.now())  # fmt: skip
    pricing_job = PricingRecomputeJob.objects.create(
        workspace=workspace, status=PricingRecomputeJob.Status.DONE, total=8, done=8
    )

    # Usage in the explorer's and the export's default range (the last days before now).
    hour = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    samples = []
    for offset in range(4):
        start = hour + timedelta(hours=offset)
        common = {"account": f"org-{mark}", "project": f"proj_{mark}", "model": f"{mark}-gpt-4o"}
        samples.append(UsageSample(start, start + timedelta(hours=1), "input_tokens", Decimal(1000 + offset), **common))
        samples.append(UsageSample(start, start + timedelta(hours=1), "output_tokens", Decimal(200 + offset), **common))
    day = datetime(hour.year, hour.month, hour.day, tzinfo=UTC)
    samples.append(
        UsageSample(day, day + timedelta(days=1), "cost", Decimal("12.34"), unit="USD", account=f"org-{mark}",
                    project=f"proj_{mark}", model=f"{mark}-gpt-4o", operation="input")
    )  # fmt: skip
    usage_store_samples(integration=integration, samples=samples)
    record = integration.usage_records.order_by("pk").first()

    tenant.ids = {
        "workspace": workspace.pk,
        "integration": integration.pk,
        "import_integration": importer.pk,
        "application": application.pk,
        "team": team.pk,
        "license": license_.pk,
        "rule": rule.pk,
        "sync_run": run.pk,
        "event": integration.events.get().pk,
        "job": job.pk,
        "usage_import": upload.pk,
        "price_override": override.pk,
        "budget": budget.pk,
        "alert": alert.pk,
        "anomaly_rule": anomaly_rule.pk,
        "webhook": webhook.pk,
        "webhook_delivery": webhook_delivery.pk,
        "pricing_job": pricing_job.pk,
        "usage_record": record.pk,
        "admin_user": admin.pk,
        "member_user": member.pk,
        "membership": Membership.objects.get(workspace=workspace, user=admin).pk,
    }
    return tenant


def build_world() -> World:
    """The victim ("victim" workspace), the outsider ("outsider" workspace) and a staff user."""
    victim = _tenant("victim", VICTIM)
    outsider = _tenant("outsider", OUTSIDER)
    return World(victim=victim, outsider=outsider, staff=_user("root-staff", staff=True))


# ---------------------------------------------------------------- the database, fingerprinted
def fingerprint() -> dict[str, tuple[int, str]]:
    """(row count, digest of every row) per model, for every table a request must not change."""
    result: dict[str, tuple[int, str]] = {}
    for model in apps.get_models():
        label = model._meta.label_lower
        if label in UNFINGERPRINTED or not model._meta.managed:
            continue
        volatile = VOLATILE_COLUMNS.get(label, ())
        columns = [f.attname for f in model._meta.concrete_fields if f.name not in volatile]
        rows = list(model._default_manager.order_by("pk").values_list(*columns))
        result[label] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
    return result


def _unwatched_tables() -> tuple[str, ...]:
    tables = []
    for label in UNFINGERPRINTED:
        try:
            tables.append(apps.get_model(label)._meta.db_table)
        except LookupError:  # an app this checkout does not have (yet)
            continue
    return tuple(tables)


@contextmanager
def writes_watched() -> Iterator[list[str]]:
    """Every INSERT, UPDATE or DELETE sent to the database inside the block (the session's and
    other UNFINGERPRINTED tables' aside): a request that must change nothing may not even try."""
    unwatched = _unwatched_tables()
    writes: list[str] = []

    def watch(execute, sql, params, many, context):  # Django's wrapper signature
        verb = sql.lstrip().split(None, 1)[0].upper() if sql else ""
        if verb in ("INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE") and not any(t in sql for t in unwatched):
            writes.append(" ".join(sql.split())[:160])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        yield writes


def changed_tables(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> list[str]:
    return sorted(
        f"{label} ({before.get(label, (0, ''))[0]} → {after.get(label, (0, ''))[0]} rows)"
        for label in set(before) | set(after)
        if before.get(label) != after.get(label)
    )
