"""A read replica for pages (doow/db_router.py), with two database aliases: GET pages read the
usage tables from `replica`, and everything else — sessions, workspaces, writes, commands,
tasks — from `default`. The `replica` alias of the tests is a database of its own, so where a
query went, and which database's rows a page shows, can be told apart."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from doow.db_router import REPLICA_MODELS
from doow.tests.test_settings import run_with, shown
from integrations.models import Integration
from integrations.providers.base import UsageSample
from integrations.testing import make_integration
from usage import rollups
from usage.models import UsageRecord
from usage.store import usage_store_samples

USAGE_TABLES = ("usage_usagerecord", "usage_usagedaily")  # and usage_usagedailynarrow (a prefix match)
DAY = datetime(2026, 11, 3, 9, tzinfo=UTC)
both = pytest.mark.django_db(databases=["default", "replica"])


@pytest.fixture
def routed(settings):
    settings.DATABASE_ROUTERS = ["doow.db_router.ReplicaRouter"]


@pytest.fixture
def integration(workspace) -> Integration:
    return make_integration(workspace, "OpenAI")


def store(integration: Integration, quantity: str, model: str = "gpt-4o") -> None:
    sample = UsageSample(
        bucket_start=DAY, bucket_end=DAY + timedelta(hours=1), metric="input_tokens",
        quantity=Decimal(quantity), unit="tokens", model=model,
    )  # fmt: skip
    usage_store_samples(integration=integration, samples=[sample])


def usage_queries(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if any(t in q["sql"] for t in USAGE_TABLES)]


def export_rows(client) -> list[dict[str, str]]:
    response = client.get(
        reverse("usage:export", kwargs={"ws": "acme"}), {"date_from": "2026-11-01", "date_to": "2026-11-30"}
    )
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


@both
def test_pages_read_usage_from_the_replica_and_the_rest_from_the_primary(routed, member_client, integration):
    store(integration, "100")  # a write: the primary
    assert UsageRecord.objects.using("default").count() == 1
    assert not UsageRecord.objects.using("replica").exists()
    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(connections["replica"]) as replica,
    ):
        response = member_client.get(reverse("usage:explorer", kwargs={"ws": "acme"}))
    assert response.status_code == 200
    assert usage_queries(replica) and not usage_queries(primary)
    # The session, the user and the workspace came from the primary (none of them is on the replica).
    assert any("django_session" in q["sql"] for q in primary.captured_queries)
    assert not any("django_session" in q["sql"] or "accounts_" in q["sql"] for q in replica.captured_queries)


@both
def test_a_streamed_export_reads_the_replica_while_it_streams(routed, member_client, workspace, integration):
    store(integration, "100")
    assert export_rows(member_client) == []  # the replica has no usage yet
    # The replica catches up (here: the same rows written to it, as replication would).
    workspace.save(using="replica", force_insert=True)
    integration.save(using="replica", force_insert=True)
    for row in UsageRecord.objects.using("default").all():
        row.save(using="replica", force_insert=True)
    assert [(r["model"], Decimal(r["quantity"])) for r in export_rows(member_client)] == [("gpt-4o", Decimal(100))]


@both
def test_writes_commands_and_tasks_use_the_primary(routed, member_client, integration):
    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(connections["replica"]) as replica,
    ):
        store(integration, "5")
        store(integration, "7")  # restated: the upsert reads nothing from the replica either
        out = io.StringIO()
        call_command("export_usage", "--workspace", "acme", stdout=out)
    assert usage_queries(primary) and not replica.captured_queries
    assert "gpt-4o" in out.getvalue() and ",7" in out.getvalue()
    assert UsageRecord.objects.using("default").get().quantity == 7


@both
def test_without_the_router_everything_uses_the_primary(member_client, integration):
    store(integration, "100")
    with CaptureQueriesContext(connections["replica"]) as replica:
        assert member_client.get(reverse("usage:explorer", kwargs={"ws": "acme"})).status_code == 200
    assert not replica.captured_queries


def test_database_replica_url_adds_the_alias_and_the_router(tmp_path):
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'aliases': sorted(s.DATABASES), 'replica': str(s.DATABASES.get('replica', {}).get('NAME')), "
        "'routers': s.DATABASE_ROUTERS}))"
    )
    replica = tmp_path / "replica.sqlite3"
    on = shown(run_with({"DEBUG": "true", "DATABASE_REPLICA_URL": f"sqlite:///{replica}"}, code))
    assert on == {
        "aliases": ["default", "replica"],
        "replica": str(replica),
        "routers": ["doow.db_router.ReplicaRouter"],
    }
    off = shown(run_with({"DEBUG": "true"}, code))
    assert off["aliases"] == ["default"] and off["routers"] == []


def test_every_rollup_level_the_pages_read_is_routed_to_the_replica():
    levels = {level.model()._meta.label_lower for level in rollups.LEVELS}
    assert levels | {"usage.usagedaily", "usage.usagerecord"} <= REPLICA_MODELS
