"""Google Vertex AI through the real sync engine: created and verified by the service, synced,
and the store holds the sandbox's true totals per metric, day, project, region and model; a
second sync changes nothing; a restated day replaces what was stored; blockers become events."""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command

from integrations import engine
from integrations.models import Integration, SyncRun
from integrations.providers.google_vertex.tests import support
from integrations.tests.restatement import stored_rows
from sandbox import google_vertex as fake
from usage.models import UsageRecord

START, END = support.days_ago(15), support.days_ago(1)


@pytest.fixture
def integration(create_integration, sandbox) -> Integration:
    return create_integration("google_vertex", support.credential(sandbox), support.settings(sandbox))


def sync(integration: Integration, since: datetime = START) -> SyncRun:
    return engine.integration_sync(integration_id=integration.pk, since=since, until=END, trigger="command")


def stored(integration: Integration) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in UsageRecord.objects.filter(integration=integration).exclude(metric="estimated_cost"):
        totals[(r.metric, r.bucket_start.date(), r.project, r.region, r.model)] += r.quantity
    return dict(totals)


def truth(run: SyncRun) -> dict[tuple, Decimal]:
    return support.true_totals(run.window_start, run.window_end, support.by_day_project_region_model)


def test_create_verifies_and_stores_the_identity(integration) -> None:
    assert integration.identity["account_id"] == fake.BILLING_ACCOUNT
    assert integration.identity["details"]["service_account"] == fake.SERVICE_ACCOUNT
    assert integration.verified_at is not None
    assert "private_key" not in str(integration.identity)


def test_sync_reproduces_the_sandbox_true_totals(integration) -> None:
    run = sync(integration)
    assert run.status == SyncRun.Status.SUCCESS, run.error
    # The engine starts on a 7-day chunk boundary at or before `since`: one query per chunk.
    assert run.window_start <= START and run.window_end == END and run.chunks_done == run.chunks_total >= 2
    assert stored(integration) == truth(run)  # exact: the export's decimals fit the store's places
    records = UsageRecord.objects.filter(integration=integration)
    assert set(records.values_list("account", flat=True)) == {fake.BILLING_ACCOUNT}
    assert set(records.filter(metric="cost").values_list("unit", flat=True)) == {"USD"}
    assert set(records.values_list("resource", flat=True)) == {s.id for s in fake.read_skus()}
    integration.refresh_from_db()
    assert integration.data_through == END and integration.status == Integration.Status.ACTIVE


def test_second_sync_changes_nothing(integration) -> None:
    assert sync(integration).status == SyncRun.Status.SUCCESS
    before = stored_rows(integration)
    second = sync(integration)
    assert second.status == SyncRun.Status.SUCCESS and second.rows_written == len(before)
    assert stored_rows(integration) == before


def test_a_restated_day_replaces_what_was_stored(integration) -> None:
    first = sync(integration)
    before = stored(integration)
    rows_before = UsageRecord.objects.filter(integration=integration).count()
    revised = support.days_ago(3).date()
    fake.revise(revised)
    # A scheduled sync: it re-reads the restatement window before the watermark.
    second = engine.integration_sync(integration_id=integration.pk, until=END, trigger="command")
    assert second.status == SyncRun.Status.SUCCESS and second.window_start <= support.days_ago(6)
    assert UsageRecord.objects.filter(integration=integration).count() == rows_before
    after = stored(integration)
    assert after == truth(first)  # the truth now holds the revised day: replaced, not added
    assert {k[1] for k in after if after[k] != before[k]} == {revised}
    day_cost = sum(v for k, v in stored(integration).items() if k[0] == "cost" and k[1] == revised)
    assert day_cost == sum(r.cost + r.credits for r in fake.truth_rows(support.days_ago(3), support.days_ago(2)))


# ------------------------------------------------------------------ blockers become events
def _sync_with(integration: Integration, **settings: str) -> tuple[SyncRun, object]:
    integration.settings = {**integration.settings, **settings}
    integration.save()
    run = sync(integration, since=support.days_ago(3))
    return run, integration.events.filter(sync_run=run).get()


def test_export_not_enabled_is_a_configuration_event(integration) -> None:
    table = fake.BILLING_TABLE.replace("01A2B3_C4D5E6_F7A8B9", "0F0F0F_0F0F0F_0F0F0F")
    run, event = _sync_with(integration, billing_table=table)
    assert (run.status, event.category, event.level, event.http_status) == ("failed", "configuration", "error", 404)
    assert event.message.startswith("The billing export table does not exist (yet)")
    assert "BigQuery export → Standard usage cost" in event.hint


def test_wrong_location_is_a_configuration_event(integration) -> None:
    _run, event = _sync_with(integration, location="EU")
    assert event.category == "configuration" and "was not found in location EU" in event.message


def test_missing_dataset_role_is_a_permission_event(integration, sandbox) -> None:
    integration.set_credential(support.credential(sandbox, email=fake.NO_ACCESS_ACCOUNT))
    _run, event = _sync_with(integration)
    assert event.category == "permission" and "BigQuery Data Viewer" in event.hint


def test_deleted_key_is_a_credential_event_without_key_material(integration, sandbox) -> None:
    credential = support.credential(sandbox, key="deleted")
    integration.set_credential(credential)
    _run, event = _sync_with(integration)
    assert (event.category, event.http_status) == ("credential", 400)
    assert "Keys → Add key" in event.hint
    for secret in integration.provider_obj.secret_values(credential):
        assert secret not in event.message + event.hint


# ------------------------------------------------------------------ the documented commands
def test_connect_and_sync_commands_as_documented(sandbox, db, tmp_path: Path) -> None:
    key_file = tmp_path / "key.json"
    key_file.write_text(fake.service_account_json(sandbox.url))
    out = io.StringIO()
    call_command("connect", "google_vertex", "--workspace", "acme",
                 "--credential", f"service_account_json=@{key_file}",
                 "--setting", f"billing_table={fake.BILLING_TABLE}", "location=US",
                 f"base_url={support.base_url(sandbox)}", stdout=out)  # fmt: skip
    integration = Integration.objects.get(pk=int(out.getvalue().strip().splitlines()[-1]))
    assert integration.identity["account_id"] == fake.BILLING_ACCOUNT
    since, until = support.days_ago(7), END - timedelta(days=1)
    call_command("sync", str(integration.pk), "--since", f"{since:%Y-%m-%d}", "--until", f"{until:%Y-%m-%d}",
                 stdout=io.StringIO())  # fmt: skip
    run = integration.sync_runs.latest("pk")
    assert run.status == SyncRun.Status.SUCCESS and stored(integration) == truth(run)
