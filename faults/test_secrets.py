"""Secrets appear nowhere: connect every provider through the add form with recognisable
credentials, sync and verify them, make every provider fail in ways that echo the key back
(401, 500, a 200 that is not JSON), then search every page (as the admin, the member, staff in
Django admin, whole and as htmx fragments), every log record at DEBUG, every event, run and
integration row, every command output and both exports for the secret and its variants.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from urllib.parse import quote

import pytest
from django.contrib import admin
from django.core.management import CommandError, call_command
from django.urls import reverse
from moto import mock_aws

from faults import figures
from faults.leaks import (
    NEVER_SENT,
    SENT_AS_IS,
    Secrets,
    every_log_record,
    log_text,
    logged,
    needles,
    secret_parts,
)
from faults.urlsweep import DJANGO_ADMIN, PUBLIC, SweepError, Target, build_url, classify, sweepable_routes
from faults.world import SweepClient, World, body
from integrations.models import Integration, IntegrationEvent, SyncRun
from integrations.providers.aws_bedrock.tests.conftest import aws_env  # noqa: F401 - the fixture, for moto
from integrations.providers.registry import PROVIDERS
from sandbox.demo import demo_integrations

pytestmark = pytest.mark.django_db

# Keys the sandbox accepts by their prefix, made recognisable; the other providers' sandboxes
# accept only their own fixed credentials (every one of them ends in "SECRET").
OPENAI_KEY = "sk-admin-faultsLEAKPROBE-Qz4Wm8Xr2Lp6Nv0Tj3Hk7Bd5"
ANTHROPIC_KEY = "sk-ant-admin01-faultsLEAKPROBE-Xq3Rt7Yu1Io5Pa9SdF2g"
AWS_KEY = {"access_key_id": "AKIAFAULTSLEAKPROBE1", "secret_access_key": "faultsLEAKPROBE/aws+Secret0Key1Zq81Ty64W"}
ROUTES = [r for r in sweepable_routes() if classify(r) not in (DJANGO_ADMIN, PUBLIC)]


def connections(sandbox_url: str) -> list[dict]:
    found = {c["provider"]: c for c in demo_integrations(sandbox_url)}
    found["openai"]["credential"] = {"api_key": OPENAI_KEY}
    found["anthropic"]["credential"] = {"api_key": ANTHROPIC_KEY}
    found["aws_bedrock"] = {
        "provider": "aws_bedrock",
        "name": "AWS Bedrock (moto)",
        "credential": AWS_KEY,
        "settings": {"regions": "us-east-1"},
    }
    return list(found.values())


@contextmanager
def provider_context(provider: str) -> Iterator[None]:
    if provider == "aws_bedrock":
        with mock_aws():
            yield
    else:
        yield


def _form(connection: dict) -> dict[str, str]:
    return {
        "name": connection["name"],
        **{f"credential_{k}": v for k, v in connection["credential"].items()},
        **{f"setting_{k}": v for k, v in connection["settings"].items()},
    }


def _echo(secret: str) -> str:
    """An error body in the common JSON shapes, echoing what the provider received."""
    message = f"Incorrect API key provided: {secret}. You can find your API key at the console."
    return json.dumps({"error": {"message": message, "code": "invalid_api_key"}, "message": message, "detail": message})


def _command(secrets: Secrets, *args: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except CommandError as error:
        secrets.check(str(error), f"`{' '.join(args)}` error")
    secrets.check(out.getvalue() + err.getvalue(), f"`{' '.join(args)}` output")


def _sandbox_faults(sandbox) -> None:  # the sandbox fixture
    figures.add("faults", sum(1 for request in sandbox.requests() if request["faulted"]))
    sandbox.reset()


def test_every_provider_credential_is_covered_by_the_leak_search():
    """A new provider must say whether it sends its secret as is (so a provider can echo it)."""
    assert set(SENT_AS_IS) | set(NEVER_SENT) == set(PROVIDERS)
    assert not set(SENT_AS_IS) & set(NEVER_SENT)


def test_the_leak_search_finds_every_variant_of_a_secret():
    secrets = Secrets()
    secrets.add("AWS", "aws_bedrock", AWS_KEY)
    secret = AWS_KEY["secret_access_key"]
    assert len(needles(secret)) >= 5
    for variant, needle in needles(secret).items():
        assert f"AWS: {variant}" in secrets.leaks(f"<td>…{needle}…</td>")
    assert secrets.leaks(f"key hint …{secret[-4:]}") == []  # the last 4 are the admin's hint
    google = next(c for c in demo_integrations("http://127.0.0.1:1") if c["provider"] == "google_vertex")
    parts = secret_parts("google_vertex", google["credential"])
    assert parts and all(len(p) >= 40 and "@" not in p for p in parts)  # private key lines, not the e-mail


@pytest.mark.usefixtures("aws_env")  # moto: Doow's own AWS credentials, nothing read from the host
def test_no_secret_appears_in_pages_logs_events_exports_or_admin(
    world: World, sandbox, django_capture_on_commit_callbacks
):
    admin_client = world.client(world.victim.admin)
    secrets = Secrets()
    connected: dict[str, Integration] = {}

    with every_log_record() as records:
        # The workspace's webhook secret: shown once on the page that makes it, then never
        # again (not in the pages, the delivery log, the admin or the logs searched below).
        made = admin_client.post(
            reverse("alerts:webhook", kwargs={"ws": "victim"}), {"url": "http://127.0.0.1:9/victim-hook"}
        )
        assert made.status_code == 200
        secrets.parts["victim webhook secret"] = re.findall(r'id="webhook-secret">(whsec_[^<]+)<', body(made))
        assert len(secrets.parts["victim webhook secret"]) == 1
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post(reverse("alerts:webhook_test", kwargs={"ws": "victim"}))
        for connection in connections(sandbox.url):
            provider = connection["provider"]
            secrets.add(connection["name"], provider, connection["credential"], connection["settings"])
            add_url = reverse("integrations:add", kwargs={"ws": "victim", "provider": provider})
            with provider_context(provider):
                if provider in SENT_AS_IS:
                    # Refused at connect, by a provider echoing the key: the form comes back.
                    echoed = connection["credential"][SENT_AS_IS[provider]]
                    sandbox.fault(f"/{provider}/", 401, times=100, body=_echo(echoed))
                    refused = admin_client.post(add_url, _form(connection))
                    assert refused.status_code == 200, f"{provider}: a rejected key must come back to the form"
                    secrets.check(body(refused), f"{provider} add form after a 401", page=True)
                    _sandbox_faults(sandbox)
                response = admin_client.post(add_url, _form(connection))
                assert response.status_code == 302, f"{provider}: {body(response)[-3000:]}"
                integration = world.victim.workspace.integrations.get(name=connection["name"])
                connected[provider] = integration
                Integration.objects.filter(pk=integration.pk).update(backfill_days=2)
                pages = {"ws": "victim", "pk": integration.pk}
                if PROVIDERS[provider].fetches_usage:
                    with django_capture_on_commit_callbacks(execute=True):
                        admin_client.post(reverse("integrations:sync", kwargs=pages))
                secrets.check(body(admin_client.post(reverse("integrations:test", kwargs=pages), headers={"HX-Request": "true"})),
                              f"{provider} test connection", page=True)  # fmt: skip
                if provider not in SENT_AS_IS:
                    continue
                echoed = connection["credential"][SENT_AS_IS[provider]]
                for status, fault_body in ((401, _echo(echoed)), (500, _echo(echoed)), (200, "{not json " + echoed)):
                    sandbox.fault(f"/{provider}/", status, times=100, body=fault_body)
                    _command(secrets, "sync", str(integration.pk), "--since", "2026-01-01", "--until", "2026-01-01")
                    answer = admin_client.post(
                        reverse("integrations:test", kwargs=pages), headers={"HX-Request": "true"}
                    )
                    secrets.check(body(answer), f"{provider} test connection after a {status}", page=True)
                    rotated = admin_client.post(
                        reverse("integrations:rotate", kwargs=pages), {f"credential_{SENT_AS_IS[provider]}": echoed}
                    )
                    secrets.check(body(rotated), f"{provider} rotate form after a {status}", page=True)
                    _sandbox_faults(sandbox)
                Integration.objects.filter(pk=integration.pk).update(status=Integration.Status.ACTIVE)

    assert set(connected) == set(PROVIDERS)
    assert SyncRun.objects.filter(status=SyncRun.Status.SUCCESS).count() >= 8
    assert SyncRun.objects.filter(status=SyncRun.Status.FAILED).count() >= 2 * len(SENT_AS_IS)
    assert IntegrationEvent.objects.filter(http_status=401).count() >= len(SENT_AS_IS)

    # Logs, at DEBUG, of every connect, sync and verify above: the capture heard each
    # provider's HTTP requests, each sync task the sync buttons ran, the webhook's delivery.
    for provider in PROVIDERS:
        if provider == "aws_bedrock":  # boto3, answered by moto inside botocore: no socket
            assert logged(records, "botocore.endpoint", "Making request for OperationModel"), provider
        else:
            assert logged(records, "urllib3.connectionpool", f" /{provider}/"), f"no request to {provider} logged"
    syncs = sum(1 for provider in PROVIDERS if PROVIDERS[provider].fetches_usage)
    assert logged(records, "celery.app.trace", "Task integrations.tasks.sync_integration[") >= syncs
    assert logged(records, "alerts.webhooks", "webhook delivery")
    for record in records:
        secrets.check(log_text(record), f"log record of {record.name}")
    # What the database keeps and the pages and admin show from it.
    for event in IntegrationEvent.objects.all():
        secrets.check(f"{event.message}\n{event.hint}\n{event.request_id}", f"event {event.pk}")
    for run in SyncRun.objects.all():
        secrets.check(run.error, f"sync run {run.pk}")
    for integration in Integration.objects.all():
        row = [integration.name, integration.credential_hint, integration.last_error_message,
               json.dumps(integration.settings), json.dumps(integration.identity), json.dumps(integration.provider_state)]  # fmt: skip
        secrets.check("\n".join(row), f"integration {integration.pk} row")
    # Exports, from the command and from the page.
    for fmt in ("csv", "focus"):
        _command(secrets, "export_usage", "--workspace", "victim", "--format", fmt)
        export = admin_client.get(reverse("usage:export", kwargs={"ws": "victim"}), {"format": fmt})
        assert export.status_code == 200
        secrets.check(body(export), f"{fmt} export", page=True)

    # Every workspace page of every integration, as the admin and as the member.
    member_client = world.client(world.victim.member)
    for provider, integration in connected.items():
        target = Target(
            world.victim, replace(world.victim, ids={**world.victim.ids, "integration": integration.pk}), world
        )
        for route in ROUTES:
            if not route.id.startswith("integrations:") and provider != "openai":
                continue  # pages that show no integration: crawled once
            try:
                url = build_url(route, target)
            except SweepError:
                continue  # test_every_route_is_classified_and_filled names it
            # Whole pages: a section's URL renders the whole detail page around it, so its
            # htmx fragment shows nothing the page does not. The member is refused every
            # integration page alike: once is enough.
            readers = [(admin_client, "admin")] + ([(member_client, "member")] if provider == "openai" else [])
            for client, who in readers:
                response = client.get(url)
                assert response.status_code < 500, url
                secrets.check(body(response), f"{who} GET {url}", page=True)

    # Django admin, as staff: every model's list, and every object's change and history pages.
    staff: SweepClient = world.client(world.staff)
    for model in admin.site._registry:
        info = model._meta.app_label, model._meta.model_name
        urls = [reverse("admin:{}_{}_changelist".format(*info))]
        for pk in model._default_manager.order_by("-pk").values_list("pk", flat=True)[:5]:
            urls += [
                reverse("admin:{}_{}_change".format(*info), args=[pk]),
                reverse("admin:{}_{}_history".format(*info), args=[pk]),
            ]
        for url in urls:
            response = staff.get(url)
            assert response.status_code == 200, url
            secrets.check(body(response), f"staff GET {url}", page=True)

    figures.add("unexpected", len(secrets.problems))
    assert not secrets.problems, f"{len(secrets.problems)} leak(s):\n" + "\n".join(secrets.problems[:50])


def test_a_key_echoed_url_encoded_is_redacted_too(world: World, sandbox):
    key = "sk-admin-AUDIT+leak/Zq81Ty64Wx9Kp2Lm7Nb3"
    secrets = Secrets()
    secrets.add("OpenAI", "openai", {"api_key": key})
    admin_client = world.client(world.victim.admin)
    add_url = reverse("integrations:add", kwargs={"ws": "victim", "provider": "openai"})
    form = {"name": "OpenAI", "credential_api_key": key, "setting_base_url": sandbox.openai_base_url}
    with every_log_record() as records:
        sandbox.fault("/openai/", 401, times=100, body=_echo(quote(key, safe="")))
        secrets.check(body(admin_client.post(add_url, form)), "the add form after a 401", page=True)
        _sandbox_faults(sandbox)
        assert admin_client.post(add_url, form).status_code == 302
        integration = world.victim.workspace.integrations.get(provider="openai", name="OpenAI")
        sandbox.fault("/openai/", 401, times=100, body=_echo(quote(key, safe="")))
        _command(secrets, "sync", str(integration.pk), "--since", "2026-01-01", "--until", "2026-01-01")
        _sandbox_faults(sandbox)
    assert logged(records, "urllib3.connectionpool", " /openai/"), "the capture heard no request to the provider"
    for record in records:
        secrets.check(log_text(record), f"log record of {record.name}")
    for event in integration.events.all():
        secrets.check(event.message + event.hint, f"event {event.pk}")
    assert not secrets.problems, "\n".join(secrets.problems)
