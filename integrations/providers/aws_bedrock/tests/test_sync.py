"""AWS Bedrock through the app: services.integration_create (the external id generated and
stored), the real sync engine against moto reproducing the true totals, a second sync changing
nothing, rotation keeping the external id, and the setup steps on the pages."""

from __future__ import annotations

from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from moto.sts.models import sts_backends

from integrations import engine, services
from integrations.models import Integration, SyncRun
from integrations.providers.aws_bedrock.tests.support import (
    CUSTOMER_ACCOUNT,
    REGIONS,
    ROLE_ARN,
    true_totals,
)
from integrations.providers.base import ConfigurationError
from integrations.providers.testing import assert_totals_equal
from integrations.tests.restatement import stored_rows
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def integration(create_integration, seeded):
    return create_integration("aws_bedrock", {"role_arn": ROLE_ARN}, {"regions": ",".join(REGIONS)})


def stored(integration) -> Counter:
    totals: Counter = Counter()
    for r in UsageRecord.objects.filter(integration=integration).exclude(metric="estimated_cost"):
        totals[(r.metric, r.bucket_start.date(), r.region, r.model, r.deployment)] += r.quantity
    return totals


def test_create_generates_stores_and_presents_the_external_id(integration, workspace):
    credential = integration.get_credential()
    external_id = credential["external_id"]
    assert external_id.startswith("doow-")
    assumed = sts_backends[CUSTOMER_ACCOUNT]["aws"].assumed_roles[-1]
    assert (assumed.external_id, assumed.session_name) == (external_id, "doow-usage-sync")  # verify used it
    assert integration.identity["account_id"] == CUSTOMER_ACCOUNT
    assert integration.identity["details"]["external_id"] == external_id
    # What the add page offers a new integration in this workspace is the same id.
    steps = services.integration_setup_instructions(provider=integration.provider_obj, workspace=workspace)
    assert external_id in steps[0].code
    assert (
        external_id
        in services.integration_setup_instructions(provider=integration.provider_obj, integration=integration)[0].code
    )


def test_sync_reproduces_the_true_totals_and_a_second_sync_changes_nothing(integration, seeded):
    run = engine.integration_sync(
        integration_id=integration.pk, since=seeded.start, until=seeded.end, trigger="command"
    )
    assert run.status == SyncRun.Status.SUCCESS, run.error
    assert run.chunks_total == run.chunks_done == 2
    # One fetch: AssumeRole, then per region ListMetrics + GetMetricData (AWS/Bedrock) and
    # ListMetrics (AWS/BedrockMantle, which lists nothing here).
    assert run.provider_calls == 1 + 3 * len(REGIONS)
    assert_totals_equal(
        stored(integration), true_totals(seeded.start, seeded.end, "day", "region", "model", "deployment")
    )
    assert set(UsageRecord.objects.filter(integration=integration).values_list("account", flat=True)) == {
        CUSTOMER_ACCOUNT
    }

    before = stored_rows(integration)
    second = engine.integration_sync(
        integration_id=integration.pk, since=seeded.start, until=seeded.end, trigger="command"
    )
    assert second.status == SyncRun.Status.SUCCESS
    assert stored_rows(integration) == before


def test_rotating_to_another_role_keeps_the_external_id(integration):
    external_id = integration.get_credential()["external_id"]
    other_role = ROLE_ARN.replace("DoowUsageRead", "DoowUsageRead2")
    services.integration_rotate_credential(integration=integration, credential={"role_arn": other_role})
    integration.refresh_from_db()
    assert integration.get_credential() == {"role_arn": other_role, "external_id": external_id}


def test_the_admin_cannot_choose_the_external_id(workspace, aws):
    with pytest.raises(ConfigurationError) as info:
        services.integration_create(
            workspace=workspace,
            provider_slug="aws_bedrock",
            credential={"role_arn": ROLE_ARN, "external_id": "someone-elses-id"},
            settings={"regions": "us-east-1"},
            verify=False,
        )
    assert "external_id" in info.value.message


def test_add_page_shows_the_setup_steps(admin_client, workspace):
    page = admin_client.get(reverse("integrations:add", kwargs={"ws": workspace.slug, "provider": "aws_bedrock"}))
    body = page.content.decode()
    assert page.status_code == 200
    assert "Set up at Amazon Web Services" in body and "cloudwatch:GetMetricData" in body and "sts:ExternalId" in body


def test_detail_page_shows_the_setup_steps_and_the_external_id(admin_client, integration):
    page = admin_client.get(
        reverse("integrations:detail", kwargs={"ws": integration.workspace.slug, "pk": integration.pk})
    )
    body = page.content.decode()
    assert page.status_code == 200
    assert "Setup at Amazon Web Services" in body
    assert integration.get_credential()["external_id"] in body  # the identity's facts, after verify


def test_connect_command_stores_a_generated_external_id(workspace, aws):
    out = StringIO()
    call_command(
        "connect", "aws_bedrock", "--workspace", workspace.slug, "--credential", f"role_arn={ROLE_ARN}",
        "--setting", "regions=us-east-1,eu-central-1", "--no-verify", stdout=out,
    )  # fmt: skip
    integration = Integration.objects.get(pk=int(out.getvalue().strip().splitlines()[-1]))
    steps = services.integration_setup_instructions(provider=integration.provider_obj, workspace=workspace)
    assert integration.get_credential()["external_id"] in steps[0].code
    assert integration.settings == {"regions": "us-east-1,eu-central-1"}


def test_add_page_shows_the_workspaces_own_external_id_that_connecting_then_stores(
    admin_client, workspace, admin_user, seeded
):
    page = admin_client.get(reverse("integrations:add", kwargs={"ws": workspace.slug, "provider": "aws_bedrock"}))
    integration = services.integration_create(
        workspace=workspace,
        provider_slug="aws_bedrock",
        credential={"role_arn": ROLE_ARN},
        settings={"regions": ",".join(REGIONS)},
        created_by=admin_user,
    )
    external_id = integration.get_credential()["external_id"]
    assert external_id.startswith("doow-")
    assert external_id in page.content.decode()  # the admin pastes this before connecting


def test_the_trust_policy_names_the_configured_app_account(admin_client, workspace, settings):
    url = reverse("integrations:add", kwargs={"ws": workspace.slug, "provider": "aws_bedrock"})
    assert "DOOW_AWS_ACCOUNT_ID" in admin_client.get(url).content.decode()
    settings.DOOW_AWS_ACCOUNT_ID = "210987654321"
    body = admin_client.get(url).content.decode()
    assert "arn:aws:iam::210987654321:root" in body
    assert "DOOW_AWS_ACCOUNT_ID" not in body


def test_every_usage_key_gets_its_list_price_estimate(integration, seeded):
    """Bedrock reports no money: each (hour, region, model, profile) gets an estimate, genai-prices'
    own price of the stored tokens for the foundation model behind the id (profiles and ARNs
    included), so nothing is unpriced and nothing adds $0."""
    from collections import defaultdict
    from decimal import Decimal

    from genai_prices import Usage, calc_price

    from usage.pricing.catalog import bedrock_model
    from usage.pricing.queries import pricing_unpriced_usage

    run = engine.integration_sync(
        integration_id=integration.pk, since=seeded.start, until=seeded.end, trigger="command"
    )
    assert run.status == SyncRun.Status.SUCCESS, run.error
    usage: dict[tuple, dict[str, Decimal]] = defaultdict(dict)
    estimates = {}
    for r in UsageRecord.objects.filter(integration=integration):
        key = (r.bucket_start, r.region, r.model, r.deployment)
        if r.metric == "estimated_cost":
            estimates[key] = r.quantity
        else:
            usage[key][r.metric] = r.quantity
    priced = {k: q for k, q in usage.items() if any(m.endswith("_tokens") for m in q)}
    assert priced and estimates.keys() == priced.keys()
    for (hour, _region, model, deployment), q in priced.items():
        cached, written = q.get("cached_input_tokens", 0), q.get("cache_write_tokens", 0)
        tokens = Usage(input_tokens=int(q.get("input_tokens", 0)), cache_read_tokens=int(cached),
                       cache_write_tokens=int(written), output_tokens=int(q.get("output_tokens", 0)))  # fmt: skip
        oracle = calc_price(tokens, bedrock_model(model or deployment), provider_id="aws", genai_request_timestamp=hour)
        key = (hour, _region, model, deployment)
        assert estimates[key] > 0 and abs(estimates[key] - oracle.total_price) <= Decimal("0.000000001"), key
    assert pricing_unpriced_usage(workspace=integration.workspace) == []
