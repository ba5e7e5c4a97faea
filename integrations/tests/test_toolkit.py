"""The connector toolkit's page cap, through the real engine and the pages an admin reads: a
listing that goes on past the cap fails the sync with a message saying so, and, since nothing
was read to the end, nothing stored is removed (integrations/providers/toolkit.py)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations import engine
from integrations.models import SyncRun
from integrations.providers.replicate import provider as replicate_provider
from integrations.providers.replicate.tests.support import days_ago
from sandbox import replicate as fake
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db


def test_a_listing_past_the_page_cap_fails_the_sync_and_keeps_the_stored_rows(
    workspace, admin_client, sandbox, monkeypatch
) -> None:
    # The admin adds Replicate (Test connection runs against the sandbox), then it syncs.
    form = {
        "name": "Replicate",
        "credential_api_token": fake.API_TOKEN,
        "setting_base_url": sandbox.url + fake.PREFIX + "/v1",
    }
    added = admin_client.post(reverse("integrations:add", kwargs={"ws": workspace.slug, "provider": "replicate"}), form)
    assert added.status_code == 302
    integration = workspace.integrations.get()
    start, end = days_ago(4), days_ago(1)
    assert len(fake.truth_predictions(start, end)) > fake.PAGE_SIZE  # more than one page
    first = engine.integration_sync(integration_id=integration.pk, since=start, until=end, trigger="command")
    assert first.status == SyncRun.Status.SUCCESS, first.error
    stored = sorted(UsageRecord.objects.filter(integration=integration).values_list("pk", "quantity"))
    assert stored

    monkeypatch.setattr(type(replicate_provider), "max_pages", 1)
    requests_before = len(sandbox.requests(f"{fake.PREFIX}/v1/predictions"))
    run = engine.integration_sync(integration_id=integration.pk, since=start, until=end, trigger="command")

    assert run.status == SyncRun.Status.FAILED
    assert "Replicate kept paginating past 1 pages." in run.error
    # One page read, the next never asked for; nothing declared answered, so no row removed.
    assert len(sandbox.requests(f"{fake.PREFIX}/v1/predictions")) == requests_before + 1
    assert sorted(UsageRecord.objects.filter(integration=integration).values_list("pk", "quantity")) == stored
    page = admin_client.get(reverse("integrations:runs", kwargs={"ws": workspace.slug, "pk": integration.pk}))
    assert page.status_code == 200
    assert "Replicate kept paginating past 1 pages." in page.content.decode()
