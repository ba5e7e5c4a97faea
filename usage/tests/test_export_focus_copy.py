"""The FOCUS export's PostgreSQL path (`COPY (SELECT …) TO STDOUT`, usage/export_focus_copy.py):
the same bytes as the Python writer on hostile data, priced, estimated and unpriced rows, cache
siblings and several currencies, through `export_usage` and the page; ListUnitPrice ×
PricingQuantity = ListCost on every usage row; memory that does not grow with the rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from usage.export import usage_export_queryset
from usage.export_focus_copy import usage_focus_write
from usage.models import Application, UsageRecord
from usage.tests.test_export import make_integration, make_license, make_record
from usage.tests.test_export_copy import HOSTILE_TEXT, hostile  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY … TO STDOUT is PostgreSQL's"),
]

DAY = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def priced(workspace):
    """Priced token rows with cache siblings, an estimated cost (left out), unpriced models and
    metrics, costs in two currencies and a credit, project names, attribution, a PTU deployment."""
    openai = make_integration(
        workspace, name="OpenAI prod", identity={"account_id": "org-1", "details": {"projects": [
            {"id": "proj_a", "name": "=Support"}, {"id": "proj_b", "name": "Research, \"R\""}]}},
    )  # fmt: skip
    bot = Application.objects.create(workspace=workspace, name='Support "Bot"\n2')
    scale = make_license(workspace, bot, "Scale tier")
    for day in range(3):
        start = DAY + timedelta(days=day, hours=day)
        for project in ("proj_a", "proj_b", "proj_c", ""):
            key = {"project": project, "model": "gpt-4o", "service_tier": "default" if day else "priority"}
            make_record(
                openai, start, "input_tokens", f"{1000 + day}.5", "tokens", application=bot if project else None, **key
            )
            make_record(openai, start, "cached_input_tokens", "200", "tokens", **key)
            make_record(openai, start, "cache_write_tokens", "1500" if project == "proj_c" else "10", "tokens", **key)
            make_record(
                openai, start, "output_tokens", "123456789012345678901.123456789", "tokens", license=scale, **key
            )
            make_record(openai, start, "requests", "7", "requests", **key)
            make_record(openai, start, "estimated_cost", "0.01", "USD", **key)
        make_record(openai, start, "input_tokens", "5", "tokens", model="no-such-model-xyz")
        make_record(openai, start, "images", "2", "images", model="dall-e-3")
        make_record(openai, start, "cost", "1.25", "USD", model="gpt-4o", operation="input")
        make_record(openai, start, "cost", "-0.5", "usd", operation="credits")
        make_record(openai, start, "cost", "3.10", "EUR", model="gpt-4o-mini")
        make_record(openai, start, "billed_quantity", "3", "tokens", model="gpt-4o")
    bedrock = make_integration(workspace, name="Bedrock", provider="aws_bedrock")
    make_record(
        bedrock,
        DAY,
        "input_tokens",
        "1000",
        "tokens",
        model="anthropic.claude-3-5-sonnet-20240620-v1:0",
        region="us-east-1",
    )
    azure = make_integration(workspace, name="Azure", provider="azure_openai",
                             identity={"details": {"accounts": [{"deployments": [{"name": "ptu", "sku": "ProvisionedManaged", "capacity": 50}]}]}})  # fmt: skip
    make_record(azure, DAY, "provisioned_hours", "1", "hours", deployment="ptu", model="gpt-4o")
    make_record(azure, DAY, "input_tokens", "100", "tokens", deployment="chat", model="gpt-4o-mini")
    return openai


def _write(records, *, use_copy: bool) -> str:
    out = io.StringIO()
    usage_focus_write(out, records, use_copy=use_copy)
    return out.getvalue()


def test_copy_writes_the_python_writers_bytes_on_priced_rows(workspace, priced):
    records = usage_export_queryset(workspace=workspace)
    python = _write(records, use_copy=False)
    assert "=Support" in python and "EUR" in python and "Credit" in python  # the data set is really there
    assert _write(records, use_copy=True) == python
    # Twice in one transaction: the staged tables are replaced, not in the way.
    assert _write(records, use_copy=True) == python


def test_copy_writes_the_python_writers_bytes_on_hostile_data(workspace, hostile):  # noqa: F811
    records = usage_export_queryset(workspace=workspace)
    python = _write(records, use_copy=False)
    assert python.count("\r\n") > len(HOSTILE_TEXT) * 2
    assert _write(records, use_copy=True) == python


def test_command_and_page_give_the_python_writers_bytes(workspace, priced, member_client):
    expected = _write(usage_export_queryset(workspace=workspace), use_copy=False)
    out = io.StringIO()
    call_command("export_usage", "--workspace", "acme", "--format", "focus", stdout=out)
    assert out.getvalue() == expected
    response = member_client.get(reverse("usage:export", kwargs={"ws": "acme"}), {"format": "focus"})
    assert response.status_code == 200
    assert b"".join(response.streaming_content).decode() == expected


def test_list_unit_price_times_pricing_quantity_is_list_cost_on_every_usage_row(workspace, priced):
    rows = list(csv.DictReader(io.StringIO(_write(usage_export_queryset(workspace=workspace), use_copy=True))))
    usage = [row for row in rows if row["ChargeCategory"] == "Usage"]
    listed = [row for row in usage if row["ListUnitPrice"]]
    assert len(listed) > len(usage) // 2  # gpt-4o is priced: most rows carry a list price
    for row in usage:
        if row["ListUnitPrice"]:
            exact = Context(prec=80).multiply(Decimal(row["ListUnitPrice"]), Decimal(row["PricingQuantity"]))
            assert exact == Decimal(row["ListCost"]), row
        else:
            assert row["ListCost"] == "0", row
    # An input_tokens row is priced on its uncached part: 1000.5 − 200 − 10; never below zero.
    inputs = [row for row in listed if row["x_Metric"] == "input_tokens" and row["x_Model"] == "gpt-4o"]
    assert {row["PricingQuantity"] for row in inputs} >= {"790.5", "0"}
    assert not [row for row in rows if row["x_Metric"] in ("estimated_cost", "billed_quantity")]


def test_memory_does_not_grow_with_the_rows(workspace):
    import tracemalloc

    integration = make_integration(workspace)
    # 50,000 rows over 50 hours (1,000 an hour: 40 models × 25 projects), as a workspace's usage looks.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {UsageRecord._meta.db_table}
                (workspace_id, integration_id, provider, bucket_start, bucket_end, account, project, region, model,
                 deployment, endpoint, resource, operation, api_key, metric, quantity, unit, provenance, stream, labels, updated_at)
            SELECT %s, %s, 'openai', %s + (n / 1000) * interval '1 hour', %s + (n / 1000 + 1) * interval '1 hour', 'org-1',
                   'proj_' || (n %% 1000), 'us-east-1', 'gpt-4o' || repeat('-mini', n %% 2), '', '', '', '', '',
                   (ARRAY['input_tokens', 'output_tokens', 'cached_input_tokens', 'requests'])[n / 40 %% 4 + 1],
                   n * 1.5, 'tokens', 'reported', '', '{{}}', now()
            FROM generate_series(0, 49999) AS n""",
            [workspace.id, integration.id, DAY, DAY],
        )
    records = usage_export_queryset(workspace=workspace)
    tracemalloc.start()
    try:
        count = usage_focus_write(_Counting(), records, use_copy=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50_000
    assert peak < 4 * 1024 * 1024, peak  # the file is over 20 MiB


class _Counting:
    def __init__(self) -> None:
        self.size = 0

    def write(self, text: str) -> None:
        self.size += len(text)
