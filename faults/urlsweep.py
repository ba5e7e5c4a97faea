"""Every URL of the project, from the URLconf itself, with its parameters filled in.

`all_routes()` walks django.urls.get_resolver(); `classify()` says who a route is for (a
workspace admin page, a workspace page members may read, a public page, Django admin);
`build_url()` fills each parameter from the tenant under attack (its slug, the ids of its real
integrations, applications, licenses, rules, jobs…) and checks that the URL resolves back to the
same view. A route with a parameter no filler knows, or that no rule classifies, raises
SweepError, so a new URL fails test_every_route_is_classified_and_filled until it is taught
here: nothing new goes unswept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from faults.world import Tenant, World
from integrations.models import Integration


class SweepError(LookupError):
    """A route the sweep does not know how to fill or whom it is for: teach this module."""


@dataclass(frozen=True)
class Route:
    namespace: str
    name: str | None
    levels: tuple[RoutePattern | RegexPattern, ...]  # from the root URLconf down to the view
    callback: Callable

    @cached_property
    def text(self) -> str:
        return "".join(str(level) for level in self.levels)

    @property
    def id(self) -> str:
        return f"{self.namespace}:{self.name}" if self.name else f"{self.namespace}:{self.text}"

    @cached_property
    def kwargs(self) -> tuple[str, ...]:
        names: list[str] = []
        for level in self.levels:
            names += sorted(level.regex.groupindex, key=level.regex.groupindex.get)
        return tuple(names)


def _walk(patterns: list, levels: tuple, namespace: str) -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(part for part in (namespace, entry.namespace) if part)
            yield from _walk(entry.url_patterns, (*levels, entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            yield Route(namespace, entry.name, (*levels, entry.pattern), entry.callback)


def all_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns, (), ""))


# ---------------------------------------------------------------- whom a route is for
WORKSPACE_ADMIN = "workspace admin page"
WORKSPACE_MEMBER = "workspace page"
PUBLIC = "public page"
DJANGO_ADMIN = "Django admin"

# Routes outside /w/<ws>/ and Django admin, each reviewed by hand: a new one fails
# test_every_route_is_classified_and_filled until it is added here (and, if its answers differ
# from these three, to EXPECTED_PUBLIC in test_url_sweep.py).
PUBLIC_ROUTES = (
    "accounts:login",
    "accounts:logout",
    "accounts:home",
    "accounts:password_reset",
    "accounts:password_reset_done",
    "accounts:password_reset_confirm",
    "accounts:password_reset_complete",
)


def classify(route: Route) -> str:
    if route.namespace == "admin":
        return DJANGO_ADMIN
    if "ws" in route.kwargs:
        # accounts.permissions.workspace_view marks the views it guards; a /w/<ws>/ view without
        # it would be a tenant page nobody checks.
        flag = getattr(route.callback, "workspace_admin_required", None)
        if flag is None:
            raise SweepError(f"{route.id} ({route.text}) takes a workspace but its view is not a workspace_view")
        return WORKSPACE_ADMIN if flag else WORKSPACE_MEMBER
    if route.id in PUBLIC_ROUTES:
        return PUBLIC
    raise SweepError(f"{route.id} ({route.text}) is not classified: add it to PUBLIC_ROUTES in faults/urlsweep.py")


# ---------------------------------------------------------------- filling parameters
@dataclass(frozen=True)
class Target:
    """Whose slug goes into the URL, and whose objects' ids."""

    slug_of: Tenant
    ids_of: Tenant
    world: World


# The object an integer `pk` names, by route id prefix (first match wins).
PK_KINDS: tuple[tuple[str, str], ...] = (
    ("integrations:", "integration"),
    ("usage_settings:application_", "application"),
    ("usage_settings:team_", "team"),
    ("usage_settings:license_", "license"),
    ("usage_settings:rule_", "rule"),
    ("usage_settings:pricing_override_", "price_override"),
    ("usage:license", "license"),
    ("alerts:budget_", "budget"),
    ("alerts:integration_mute", "integration"),
)
# Django admin: the tenant object shown by each model's change/delete/history URLs.
ADMIN_OBJECTS: dict[str, str] = {
    "accounts.workspace": "workspace",
    "accounts.membership": "membership",
    "auth.user": "admin_user",
    "integrations.integration": "integration",
    "integrations.syncrun": "sync_run",
    "integrations.integrationevent": "event",
    "usage.usagerecord": "usage_record",
    "usage.application": "application",
    "usage.team": "team",
    "usage.license": "license",
    "usage.attributionrule": "rule",
    "usage.reattributionjob": "job",
    "usage.usageimport": "usage_import",
    "usage.priceoverride": "price_override",
    "usage.pricingrecomputejob": "pricing_job",
    "alerts.budget": "budget",
    "alerts.alert": "alert",
    "alerts.anomalyrule": "anomaly_rule",
    "alerts.webhook": "webhook",
    "alerts.webhookdelivery": "webhook_delivery",
}
# Admin models that hold no tenant data: any row (or id 1) will do.
NON_TENANT_ADMIN = ("auth.group", "django_celery_beat.", "axes.")
_ADMIN_MODEL = re.compile(r"^admin/(\w+)/(\w+)/<path:object_id>/")


def _pk(route: Route, target: Target) -> int:
    for prefix, kind in PK_KINDS:
        if route.id.startswith(prefix):
            return target.ids_of.ids[kind]
    raise SweepError(f"{route.id}: which object does its <pk> name? Add it to PK_KINDS in faults/urlsweep.py")


def _admin_object_id(route: Route, target: Target) -> int:
    if route.id == "admin:view_on_site":
        return target.ids_of.ids["integration"]
    match = _ADMIN_MODEL.match(route.text)
    if not match:
        raise SweepError(f"{route.id}: an admin <object_id> of no known model")
    label = f"{match[1]}.{match[2]}"
    if label in ADMIN_OBJECTS:
        return target.ids_of.ids[ADMIN_OBJECTS[label]]
    if label.startswith(NON_TENANT_ADMIN):
        model = apps.get_model(match[1], match[2])
        return model._default_manager.values_list("pk", flat=True).first() or 1
    raise SweepError(f"{route.id}: admin model {label} is neither in ADMIN_OBJECTS nor NON_TENANT_ADMIN")


def _admin_user_id(route: Route, target: Target) -> int:
    if route.id != "admin:auth_user_password_change":
        raise SweepError(f"{route.id}: which user does its <id> name?")
    return target.ids_of.ids["admin_user"]


@dataclass(frozen=True)
class Filler:
    fill: Callable[[Route, Target], object]
    tenant_object: bool  # True: the value is the id of one of the tenant's objects


FILLERS: dict[str, Filler] = {
    "ws": Filler(lambda route, target: target.slug_of.workspace.slug, tenant_object=False),
    "pk": Filler(_pk, tenant_object=True),
    "provider": Filler(lambda route, target: "openai", tenant_object=False),
    # An upload's import job (integrations:import_status), of the integration `pk` names.
    "job": Filler(lambda route, target: target.ids_of.ids["usage_import"], tenant_object=True),
    "object_id": Filler(_admin_object_id, tenant_object=True),
    "id": Filler(_admin_user_id, tenant_object=True),
    "content_type_id": Filler(
        lambda route, target: ContentType.objects.get_for_model(Integration).pk, tenant_object=False
    ),
    "app_label": Filler(lambda route, target: "integrations", tenant_object=False),
    "url": Filler(lambda route, target: "no-such-page/", tenant_object=False),  # the admin's catch-all
    # A password-reset link for the tenant's admin, with a forged token: it must reset nothing.
    "uidb64": Filler(
        lambda route, target: urlsafe_base64_encode(force_bytes(target.ids_of.ids["admin_user"])), tenant_object=False
    ),
    "token": Filler(lambda route, target: "forged-0123456789abcdef", tenant_object=False),
}


def sweepable(route: Route) -> bool:
    """Classified, with a filler for every parameter. The sweeps take only these; the coverage
    test (test_every_route_is_classified_and_filled) names every other one and fails."""
    try:
        classify(route)
    except SweepError:
        return False
    return all(name in FILLERS for name in route.kwargs)


def sweepable_routes() -> list[Route]:
    return [route for route in all_routes() if sweepable(route)]


def takes_object(route: Route) -> bool:
    """Does the URL name one of the tenant's objects (so another tenant's id must be a 404)?"""
    return any(FILLERS[name].tenant_object for name in route.kwargs if name in FILLERS)


_PLACEHOLDER = re.compile(r"<(?:\w+:)?(\w+)>")
_REGEX_LEFTOVER = re.compile(r"[\\^$.*+?()\[\]{}|]")


def _replace_groups(regex: str, values: dict[str, str]) -> str:
    """`regex` with every `(?P<name>…)` group replaced by values[name] (nested parentheses allowed)."""
    out, i = [], 0
    while (start := regex.find("(?P<", i)) != -1:
        name = regex[start + 4 : regex.index(">", start)]
        depth, j = 0, start
        while True:
            if regex[j] == "\\":
                j += 2
                continue
            depth += {"(": 1, ")": -1}.get(regex[j], 0)
            if depth == 0:
                break
            j += 1
        out += [regex[i:start], values[name]]
        i = j + 1
    out.append(regex[i:])
    return "".join(out)


def build_url(route: Route, target: Target) -> str:
    values: dict[str, str] = {}
    for name in route.kwargs:
        if name not in FILLERS:
            raise SweepError(
                f"{route.id} ({route.text}): no filler for <{name}>: add one to FILLERS in faults/urlsweep.py"
            )
        values[name] = str(FILLERS[name].fill(route, target))
    parts = []
    for level in route.levels:
        if isinstance(level, RoutePattern):
            parts.append(_PLACEHOLDER.sub(lambda m: values[m[1]], str(level)))
        else:
            text = _replace_groups(level.regex.pattern, values).removeprefix("^").removesuffix("$").removesuffix(r"\Z")
            if _REGEX_LEFTOVER.search(text):
                raise SweepError(f"{route.id}: cannot write a URL for the regex {level.regex.pattern!r}")
            parts.append(text)
    url = "/" + "".join(parts)
    match = resolve(url)
    if match.func is not route.callback:
        raise SweepError(
            f"{route.id}: the URL built for it, {url}, resolves to {match.view_name or match.func} instead"
        )
    return url


# ---------------------------------------------------------------- what a POST carries
def _usage_csv() -> SimpleUploadedFile:
    day = (timezone.now() - timedelta(days=10)).date()
    text = f"bucket_start,bucket_end,metric,quantity\n{day}T00:00:00Z,{day}T01:00:00Z,requests,7\n"
    return SimpleUploadedFile("usage.csv", text.encode(), content_type="text/csv")


def _integration_settings(tenant: Tenant) -> dict[str, str]:
    integration = Integration.objects.get(pk=tenant.ids["integration"])
    settings = {
        f"setting_{f.name}": integration.settings.get(f.name, "") for f in integration.provider_obj.setting_fields
    }
    return {"name": "pwned", "sync_interval": "60", "backfill_days": "30", **settings}


def _license(tenant: Tenant) -> dict[str, str]:
    return {
        "application": str(tenant.ids["application"]),
        "plan_name": "pwned",
        "kind": "pay_as_you_go",
        "start_date": "2026-01-01",
    }


def _rule(tenant: Tenant) -> dict[str, str]:
    return {"provider": "openai", "model": "pwned*", "application": str(tenant.ids["application"]), "priority": "5"}


def _budget(tenant: Tenant) -> dict[str, str]:
    return {
        "name": "pwned",
        "scope": "workspace",
        "amount": "1",
        "currency": "USD",
        "warn_percent": "80",
        "exceed_percent": "100",
    }


# A POST that would succeed for the tenant's admin, so "an outsider's POST changed nothing"
# cannot pass merely because the form was empty. test_url_sweep proves each one writes.
PAYLOADS: dict[str, Callable[[Tenant], dict[str, object]]] = {
    "integrations:edit": _integration_settings,
    "integrations:pause": lambda tenant: {},
    "integrations:resolve_duplicate": lambda tenant: {"resolution": "pause"},
    "integrations:disconnect": lambda tenant: {"data_choice": "delete"},
    "integrations:import_usage": lambda tenant: {"format": "doow", "file": _usage_csv()},
    "integrations:rotate": lambda tenant: {"credential_api_key": "sk-admin-pwned-0123456789abcdef0123"},
    "integrations:add": lambda tenant: {
        "name": "pwned",
        "credential_api_key": "sk-admin-pwned-0123456789abcdef0123",
        "setting_base_url": "http://127.0.0.1:9/v1",
    },
    "usage_settings:application_add": lambda tenant: {"name": "pwned"},
    "usage_settings:application_edit": lambda tenant: {"name": "pwned"},
    "usage_settings:team_add": lambda tenant: {"name": "pwned", "cost_centre": "CC-pwned"},
    "usage_settings:team_edit": lambda tenant: {"name": "pwned"},
    "usage_settings:license_add": _license,
    "usage_settings:license_edit": _license,
    "usage_settings:rule_add": _rule,
    "usage_settings:rule_edit": _rule,
    "usage_settings:rule_move": lambda tenant: {"direction": "up"},
    "alerts:budget_add": _budget,
    "alerts:budget_edit": _budget,
    "alerts:budget_mute": lambda tenant: {"mute": "1"},
    "alerts:integration_mute": lambda tenant: {"mute": "1"},
    "alerts:anomaly_rule": lambda tenant: {"enabled": "on", "ratio": "7", "mads": "3", "min_amount": "50"},
    "alerts:webhook": lambda tenant: {"url": "http://127.0.0.1:9/pwned"},
    "usage_settings:pricing_override_add": lambda tenant: {
        "kind": "discount",
        "provider": "openai",
        "discount_percent": "10",
        "effective_from": "2026-01-01",
    },
}
# Member routes whose POST writes only the signed-in person's own rows (POST only: GET is 405).
MEMBER_WRITES = ("alerts:notifications_read",)
# Routes whose POST (with the payload above, or none) changes the database for the tenant's admin.
WRITES = (
    "integrations:edit",
    "integrations:pause",
    "integrations:resolve_duplicate",
    "integrations:count_again",
    "integrations:disconnect",
    "integrations:import_usage",
    "usage_settings:application_add",
    "usage_settings:application_edit",
    "usage_settings:application_delete",
    "usage_settings:team_add",
    "usage_settings:team_edit",
    "usage_settings:team_delete",
    "usage_settings:license_add",
    "usage_settings:license_edit",
    "usage_settings:license_delete",
    "usage_settings:rule_add",
    "usage_settings:rule_edit",
    "usage_settings:rule_delete",
    "usage_settings:rule_move",
    "usage_settings:pricing_override_add",
    "usage_settings:pricing_override_delete",
    "alerts:budget_add",
    "alerts:budget_edit",
    "alerts:budget_delete",
    "alerts:budget_mute",
    "alerts:integration_mute",
    "alerts:anomaly_rule",
    "alerts:webhook",
    "alerts:webhook_delete",
    "alerts:webhook_test",
)


def payload(route: Route, tenant: Tenant) -> dict[str, object]:
    return PAYLOADS.get(route.id, lambda tenant: {})(tenant)
