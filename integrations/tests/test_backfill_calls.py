"""A 30-day backfill costs each provider at most 1.2× the calls its API needs (issue 9).

Each provider's integration is created against its sandbox (moto for AWS) and synced through
the engine exactly as the first scheduled sync runs it (the default 30-day backfill); the
calls the run counted are compared with the provider's minimum for the same window, worked
out from its documented page sizes and longest window per call (/work/shared/providers.md,
docs/performance.md "Dispatcher and provider calls") and the sandbox's data. The minimum is
also a floor: a connector below it would be skipping data, so the test fails then too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta

import pytest

from integrations import engine, services
from integrations.models import SyncRun
from integrations.providers.registry import get_provider
from sandbox import azure_openai as azure_sandbox
from sandbox import google_vertex as vertex_sandbox
from sandbox import replicate as replicate_sandbox
from sandbox.demo import demo_integrations

pytestmark = pytest.mark.django_db
BOUND = 1.2
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def _hours(run: SyncRun) -> int:
    return math.ceil((run.window_end - run.window_start) / HOUR)


def _days(run: SyncRun) -> int:
    return math.ceil((run.window_end - run.window_start) / DAY)


def _pages(items: int, size: int) -> int:
    return max(1, math.ceil(items / size))


# slug -> (minimum calls for the run's window, how it is made up)
MINIMA: dict[str, Callable[[SyncRun], tuple[int, str]]] = {
    # usage: completions and six more endpoints hourly, at most 168 buckets per page; vector
    # stores daily, at most 31 per page; costs: daily, at most 180 per page.
    "openai": lambda run: (
        7 * _pages(_hours(run), 168) + _pages(_days(run), 31) + _pages(_days(run), 180),
        f"7 × {_pages(_hours(run), 168)} usage pages of ≤168 h + {_pages(_days(run), 31)} vector-store page(s) "
        f"of ≤31 d + {_pages(_days(run), 180)} cost page of ≤180 d",
    ),
    # usage: hourly, at most 168 buckets per page; cost report: daily, at most 31 per page.
    "anthropic": lambda run: (
        _pages(_hours(run), 168) + _pages(_days(run), 31),
        f"{_pages(_hours(run), 168)} usage pages of ≤168 h + {_pages(_days(run), 31)} cost page(s) of ≤31 d",
    ),
    # /activity without `date` serves the last 30 completed days at once.
    "openrouter": lambda run: (1, "one /activity without date (30 days)"),
    # the metric names (discovered: they were renamed once) + one query_range per metric per
    # 11,000 points at the 5-minute step.
    "groq": lambda run: (
        1 + 3 * _pages(_hours(run) * 12 + 1, 11_000),
        "1 name discovery + 3 metrics × 1 query_range of ≤11,000 points",
    ),
    # billingUsage per usage type (serverless, dedicated) per ≤31 days + one metrics scrape.
    "fireworks": lambda run: (3 * _pages(_days(run), 31) + 1, "3 usage types × billingUsage of ≤31 d + 1 scrape"),
}


def _replicate(run: SyncRun) -> tuple[int, str]:
    predictions = len(replicate_sandbox.truth_predictions(run.window_start, run.window_end))
    pages = _pages(predictions, replicate_sandbox.PAGE_SIZE)
    # /trainings has no date filter: at least one page, newest first, down to the window start.
    trainings = len(replicate_sandbox.truth_trainings(run.window_start, run.window_end))
    training_pages = max(1, _pages(trainings, replicate_sandbox.PAGE_SIZE))
    return (
        1 + pages + training_pages,
        f"/account + {pages} pages of ≤100 of {predictions:,} predictions + {training_pages} of {trainings} trainings",
    )


def _azure(run: SyncRun) -> tuple[int, str]:
    accounts = azure_sandbox.accounts()
    served = [a for a in accounts if a.serves_openai]
    listing = _pages(len(accounts), azure_sandbox.ACCOUNTS_PAGE_SIZE)
    deployments = sum(_pages(len(a.deployments), azure_sandbox.DEPLOYMENTS_PAGE_SIZE) for a in served)
    # Two metrics reads per account and ≤30 days: the token counts, and the request counts split
    # by StatusCode (Azure refuses that dimension on the token metrics, so they cannot be one).
    metrics = 2 * len(served) * _pages(_hours(run), 30 * 24)
    return (
        1 + listing + deployments + metrics,
        f"token + {listing} account pages + {deployments} deployment pages + {metrics} metrics reads "
        f"({len(served)} accounts × 2 (tokens, requests by status) × ≤30 d)",
    )


def _vertex(run: SyncRun) -> tuple[int, str]:
    rows = len(vertex_sandbox.truth_rows(run.window_start, run.window_end))
    pages = _pages(rows, vertex_sandbox.PAGE_ROWS)
    return 2 + pages, f"token + query + {pages} result pages of ≤{vertex_sandbox.PAGE_ROWS} of {rows:,} rows"


MINIMA.update(replicate=_replicate, azure_openai=_azure, google_vertex=_vertex)


def _report(slug: str, run: SyncRun, minimum: int, how: str) -> None:
    print(
        f"\n30-day backfill, {slug:13} {run.provider_calls:4d} calls, minimum {minimum:4d} "
        f"({run.provider_calls / minimum:.2f}×): {how}; {run.chunks_done} chunks, {run.rows_written:,} rows"
    )


def _check(slug: str, run: SyncRun) -> None:
    assert run.status == SyncRun.Status.SUCCESS, run.error
    assert run.window_end - run.window_start >= 30 * DAY - get_provider(slug).bucket
    minimum, how = MINIMA[slug](run)
    _report(slug, run, minimum, how)
    assert minimum <= run.provider_calls <= BOUND * minimum, how


@pytest.mark.parametrize("slug", sorted(MINIMA))
def test_a_30_day_backfill_costs_at_most_1_2_times_the_minimum_calls(slug, workspace, sandbox, settings):
    # Production's timeout: the sandbox computes a month of Groq's 5-minute points in Python.
    settings.DOOW_HTTP_TIMEOUT_SECONDS = 30.0
    spec = next(s for s in demo_integrations(sandbox.url) if s["provider"] == slug)
    integration = services.integration_create(
        workspace=workspace, provider_slug=slug, credential=spec["credential"], settings=spec["settings"], verify=False
    )
    assert integration.backfill_days == 30
    _check(slug, engine.integration_sync(integration_id=integration.pk))


def test_a_30_day_bedrock_backfill_costs_at_most_1_2_times_the_minimum_calls(workspace, monkeypatch):
    from moto import mock_aws

    from integrations.providers.aws_bedrock.tests.conftest import AWS_ENV
    from integrations.providers.aws_bedrock.tests.support import (
        MODELS,
        REGIONS,
        ROLE_ARN,
        customer_client,
        seed_cloudwatch,
    )

    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with mock_aws():
        from django.utils import timezone

        # Datapoints at both ends of the window (moto's GetMetricData is slow on a full month).
        today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        seed_cloudwatch(customer_client, today - 30 * DAY, today - 29 * DAY)
        seed_cloudwatch(customer_client, today - DAY, today)
        integration = services.integration_create(
            workspace=workspace, provider_slug="aws_bedrock", credential={"role_arn": ROLE_ARN},
            settings={"regions": ",".join(REGIONS)}, verify=False,
        )  # fmt: skip
        run = engine.integration_sync(integration_id=integration.pk)
    # AssumeRole once; per region one ListMetrics page (≤500 metrics) and GetMetricData calls of
    # ≤500 queries and ≤100,800 datapoints (5 metrics per model, one datapoint per hour), and one
    # ListMetrics page of AWS/BedrockMantle (no bedrock-mantle traffic here: nothing more).
    minimum = 1
    for region in REGIONS:
        queries = 5 * len(MODELS[region])
        minimum += 2 + max(_pages(queries, 500), _pages(queries * _hours(run), 100_800))
    MINIMA["aws_bedrock"] = lambda run: (
        minimum,
        f"AssumeRole + {len(REGIONS)} regions × (ListMetrics + GetMetricData + ListMetrics of AWS/BedrockMantle)",
    )
    _check("aws_bedrock", run)
    assert {r.bucket_start.date() for r in integration.usage_records.all()} >= {
        (today - 30 * DAY).date(),
        (today - DAY).date(),
    }


def test_authress_makes_no_calls_its_usage_is_imported(workspace, sandbox):
    spec = next(s for s in demo_integrations(sandbox.url) if s["provider"] == "authress")
    integration = services.integration_create(
        workspace=workspace,
        provider_slug="authress",
        credential=spec["credential"],
        settings=spec["settings"],
        verify=False,
    )
    with pytest.raises(services.SyncNotAllowed):
        engine.integration_sync(integration_id=integration.pk)
    print("\n30-day backfill, authress         0 calls, minimum    0: no usage API (imported as CSV)")
