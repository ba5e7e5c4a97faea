"""estimated_cost through the real sync engine: every usage key of a synced chunk gets its
list-price estimate in the same chunk (same bucket, dimensions and application), a restated
window removes the estimates of usage that vanished, and usage without a known price is
listed as unpriced with its volume, never $0."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from integrations import engine, services
from integrations.models import SyncRun
from sandbox import openai as fake_openai
from sandbox import replicate as fake_replicate
from usage.models import UsageRecord
from usage.pricing.queries import pricing_reported_vs_estimated, pricing_unpriced_usage

pytestmark = pytest.mark.django_db
D0 = datetime(2026, 11, 2, tzinfo=UTC)
DAY = timedelta(days=1)
NINE = Decimal("0.000000001")
O3 = "o3-mini-2025-01-31"


def sync(integration, since: datetime, until: datetime) -> SyncRun:
    run = engine.integration_sync(integration_id=integration.pk, since=since, until=until, trigger="command")
    assert run.status == SyncRun.Status.SUCCESS, run.error
    return run


def estimates(integration, stream: str | None = "usage_completions:estimate", **filters) -> dict[tuple, UsageRecord]:
    """The estimates of one stream, by default the completions' (one per hour, project and
    model: each of the sandbox's (hour, project, model) has one service tier and batch value)."""
    if stream is not None:
        filters["stream"] = stream
    rows = UsageRecord.objects.filter(integration=integration, metric="estimated_cost", **filters)
    return {(r.bucket_start, r.project, r.model): r for r in rows}


def embeddings_oracle(start: datetime, end: datetime) -> Decimal:
    """genai-prices' price of the sandbox's embeddings input (moderations have no list price:
    unpriced, no estimate; images, speech, audio, sessions and storage are never token-priced)."""
    total = Decimal(0)
    for row in fake_openai.truth_kind("embeddings", start, end):
        price = calc_price(Usage(input_tokens=row.values[0]), row.model, provider_id="openai",
                           genai_request_timestamp=row.hour_start)  # fmt: skip
        total += price.total_price.quantize(NINE)
    return total


def openai_oracle(start: datetime, end: datetime) -> dict[tuple, Decimal]:
    """genai-prices' own calculation of each (hour, project, model) of the sandbox's usage."""
    out = {}
    for row in fake_openai.truth_usage(start, end):
        usage = Usage(
            input_tokens=row.input_tokens,
            cache_read_tokens=row.input_cached_tokens,
            cache_write_tokens=row.input_cache_write_tokens,
            output_tokens=row.output_tokens,
        )
        price = calc_price(usage, row.model, provider_id="openai", genai_request_timestamp=row.hour_start)
        # Batch API and Flex traffic are billed at half the standard price.
        half = row.batch or row.service_tier == "flex"
        out[(row.hour_start, row.project_id, row.model)] = (price.total_price / (2 if half else 1)).quantize(NINE)
    return out


def test_every_usage_key_gets_its_list_price_estimate_in_the_same_chunk(openai_integration):
    sync(openai_integration, D0, D0 + DAY)
    stored = estimates(openai_integration)
    oracle = openai_oracle(D0, D0 + DAY)
    # Exact, but for halved (batch / flex) keys: genai-prices rounds the total it halves, we
    # halve the unit prices: a billionth of a dollar apart at most.
    assert oracle and stored.keys() == oracle.keys()
    assert all(abs(stored[k].quantity - v) <= NINE for k, v in oracle.items())
    for (hour, project, model), row in stored.items():
        assert (row.unit, row.provenance, row.stream) == ("USD", "estimated", "usage_completions:estimate")
        usage = UsageRecord.objects.get(integration=openai_integration, bucket_start=hour, project=project, model=model,
                                        metric="input_tokens")  # fmt: skip
        assert (row.bucket_end, row.account, row.application_id) == (
            usage.bucket_end,
            usage.account,
            usage.application_id,
        )
    # The provider's reported cost is untouched: it stays its own metric.
    assert UsageRecord.objects.filter(integration=openai_integration, metric="cost").exists()


def test_a_second_sync_replaces_estimates_and_never_adds(openai_integration):
    sync(openai_integration, D0, D0 + DAY)
    first = {k: r.quantity for k, r in estimates(openai_integration).items()}
    sync(openai_integration, D0, D0 + DAY)
    assert {k: r.quantity for k, r in estimates(openai_integration).items()} == first


def test_a_restated_window_removes_the_estimates_of_usage_that_vanished(openai_integration, sandbox):
    sync(openai_integration, D0, D0 + DAY)
    assert estimates(openai_integration, model=O3)
    kept = {k: r.quantity for k, r in estimates(openai_integration).items() if k[2] != O3}

    fake_openai.withdraw_model(O3)
    run = sync(openai_integration, D0, D0 + DAY)
    assert run.rows_removed > 0
    assert not estimates(openai_integration, model=O3)
    assert {k: r.quantity for k, r in estimates(openai_integration).items()} == kept


def test_reported_cost_and_estimate_side_by_side_per_provider_and_month(openai_integration):
    sync(openai_integration, D0, D0 + 2 * DAY)
    [row] = pricing_reported_vs_estimated(workspace=openai_integration.workspace)
    reported = sum(UsageRecord.objects.filter(metric="cost").values_list("quantity", flat=True))
    estimated = sum(openai_oracle(D0, D0 + 2 * DAY).values()) + embeddings_oracle(D0, D0 + 2 * DAY)
    assert (row.provider, row.month.isoformat(), row.currency) == ("openai", "2026-11-01", "USD")
    assert row.reported == reported and abs(row.estimated - estimated) <= NINE * len(openai_oracle(D0, D0 + 2 * DAY))
    assert row.spend == reported and not row.spend_is_estimated
    assert row.difference == reported - row.estimated


@pytest.fixture
def replicate_integration(workspace, admin_user, sandbox):
    return services.integration_create(
        workspace=workspace,
        provider_slug="replicate",
        credential={"api_token": fake_replicate.API_TOKEN},
        settings={"base_url": sandbox.url + fake_replicate.PREFIX + "/v1"},
        created_by=admin_user,
    )


@pytest.mark.clock("2026-12-06T12:00:00Z")  # the unpriced list covers the last 31 days of the default instant
def test_compute_priced_usage_is_estimated_and_unknown_models_are_listed_unpriced(replicate_integration):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    sync(replicate_integration, now - 2 * DAY, now)
    rows = UsageRecord.objects.filter(integration=replicate_integration)
    seconds: dict[str, Decimal] = defaultdict(Decimal)
    predictions: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows.filter(metric="compute_seconds"):
        seconds[r.model] += r.quantity
    for r in rows.filter(metric="requests"):
        predictions[r.model] += r.quantity
    estimated: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows.filter(metric="estimated_cost"):
        estimated[r.model] += r.quantity
    # SDXL runs on an L40S ($0.000975/s); FLUX schnell is billed per image ($0.003). Per row:
    for estimate in rows.filter(
        metric="estimated_cost", model__in=["stability-ai/sdxl", "black-forest-labs/flux-schnell"]
    ):
        key = {"bucket_start": estimate.bucket_start, "model": estimate.model, "deployment": estimate.deployment}
        usage = {r.metric: r for r in rows.filter(metric__in=["requests", "compute_seconds"], **key)}
        if estimate.model == "stability-ai/sdxl":
            assert estimate.quantity == (usage["compute_seconds"].quantity * Decimal("0.000975")).quantize(NINE)
        else:
            assert estimate.quantity == usage["requests"].quantity * Decimal("0.003")
        assert estimate.application_id == usage["requests"].application_id is not None  # attributed like its usage
    assert estimated["stability-ai/sdxl"] > 0 and estimated["black-forest-labs/flux-schnell"] > 0
    # The sandbox's private model and Llama 3 (billed per token, which predictions do not report) have no price.
    assert "doow-sandbox/invoice-ocr" not in estimated and "meta/meta-llama-3-8b-instruct" not in estimated
    unpriced = {
        (u.model, u.metric): u.quantity for u in pricing_unpriced_usage(workspace=replicate_integration.workspace)
    }
    assert unpriced[("doow-sandbox/invoice-ocr", "compute_seconds")] == seconds["doow-sandbox/invoice-ocr"] > 0
    assert unpriced[("meta/meta-llama-3-8b-instruct", "requests")] == predictions["meta/meta-llama-3-8b-instruct"]
    assert not any(model == "stability-ai/sdxl" and metric == "compute_seconds" for model, metric in unpriced)
    [month] = pricing_reported_vs_estimated(workspace=replicate_integration.workspace) or [None]
    assert month is None or (month.reported is None and month.spend_is_estimated)


def test_imported_usage_is_estimated_from_the_whole_file_and_not_counted_as_imported(openai_integration):
    from integrations.tests.restatement import import_rows

    hour = {"bucket_start": D0, "bucket_end": D0 + timedelta(hours=1), "model": "gpt-4o-2024-08-06", "project": "p"}
    rows = [{**hour, "metric": "input_tokens", "quantity": "1000000", "unit": "tokens"},
            {**hour, "metric": "cached_input_tokens", "quantity": "200000", "unit": "tokens"},
            {**hour, "metric": "output_tokens", "quantity": "100000", "unit": "tokens"},
            # an export's estimate in the file is not imported: it is recomputed
            {**hour, "metric": "estimated_cost", "quantity": "999", "unit": "USD"}]  # fmt: skip
    import_rows(openai_integration, rows)
    [estimate] = estimates(openai_integration, stream=None).values()
    # 0.8M uncached × $2.50 + 0.2M cached × $1.25 + 0.1M output × $10, per million
    assert (estimate.quantity, estimate.provenance, estimate.stream) == (Decimal("3.25"), "estimated", "estimate")
    event = openai_integration.events.latest("pk")
    assert event.message.startswith("Imported 3 usage rows")


def test_the_recompute_command_restores_estimates_from_current_prices(openai_integration):
    import io

    from django.core.management import call_command

    sync(openai_integration, D0, D0 + DAY)
    before = {k: r.quantity for k, r in estimates(openai_integration).items()}
    UsageRecord.objects.filter(metric="estimated_cost").update(quantity=Decimal(0))  # e.g. priced by an older pin
    UsageRecord.objects.create(  # an estimate whose usage is gone: recomputing removes it
        workspace=openai_integration.workspace, integration=openai_integration, provider="openai", bucket_start=D0,
        bucket_end=D0 + timedelta(hours=1), model="retired", metric="estimated_cost", quantity=1, unit="USD",
        provenance="estimated", stream="usage_completions:estimate",
    )  # fmt: skip
    out = io.StringIO()
    call_command("recompute_estimates", "--workspace", "acme", stdout=out)
    assert out.getvalue().startswith("acme: ") and "(done)" in out.getvalue()
    assert {k: r.quantity for k, r in estimates(openai_integration).items()} == before


@pytest.fixture
def azure_integration(workspace, admin_user, sandbox):
    from integrations.providers.azure_openai.tests import support

    return services.integration_create(workspace=workspace, provider_slug="azure_openai", credential=support.credential(),
                                       settings=support.settings(sandbox), created_by=admin_user)  # fmt: skip


def test_azure_ptu_hours_and_standard_tokens_are_both_estimated(azure_integration):
    from integrations.providers.azure_openai.tests import support

    sync(azure_integration, support.days_ago(2), support.days_ago(1))
    rows = UsageRecord.objects.filter(integration=azure_integration)
    ptu = rows.filter(metric="estimated_cost", deployment="gpt-4o-ptu")
    # ProvisionedManaged, 15 PTUs: $2.00 per PTU-hour for every hour with usage, whatever the tokens.
    assert ptu.exists() and {r.quantity for r in ptu} == {Decimal("30.000000000")}
    hours = rows.filter(deployment="gpt-4o-ptu").exclude(metric="estimated_cost").values("bucket_start").distinct()
    assert ptu.count() == hours.count()  # one per hour with any usage
    # GlobalStandard tokens at gpt-4o's list price; the batch deployment at half of it.
    for estimate in rows.filter(metric="estimated_cost", deployment__in=["gpt-4o-prod", "gpt-4o-batch"])[:20]:
        usage = {u.metric: u.quantity for u in rows.filter(bucket_start=estimate.bucket_start, deployment=estimate.deployment,
                                                             resource=estimate.resource).exclude(metric="estimated_cost")}  # fmt: skip
        full = (
            usage.get("input_tokens", 0) * Decimal("2.5") / 10**6 + usage.get("output_tokens", 0) * Decimal(10) / 10**6
        )
        factor = Decimal("0.5") if estimate.deployment == "gpt-4o-batch" else Decimal(1)
        assert estimate.quantity == (full * factor).quantize(NINE)


def token_keys(integration, **filters) -> tuple[dict[tuple, dict[str, Decimal]], dict[tuple, Decimal]]:
    """Stored token usage and estimates per (hour, stream, every dimension)."""
    from usage.models import DIMENSION_FIELDS

    usage: dict[tuple, dict[str, Decimal]] = defaultdict(dict)
    estimates: dict[tuple, Decimal] = {}
    for r in UsageRecord.objects.filter(integration=integration, **filters):
        key = (r.bucket_start, r.stream.removesuffix(":estimate"), *(getattr(r, d) for d in DIMENSION_FIELDS))
        if r.metric == "estimated_cost":
            estimates[key] = r.quantity
        elif r.metric in ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens"):
            usage[key][r.metric] = r.quantity  # (fine-tuning's training_tokens have no list price: unpriced)
    return usage, estimates


def model_of(key: tuple) -> str:
    from usage.models import DIMENSION_FIELDS

    return key[2 + DIMENSION_FIELDS.index("model")]


def genai_oracle(provider_id: str, model: str, hour: datetime, q: dict[str, Decimal]) -> Decimal | None:
    tokens = Usage(input_tokens=int(q.get("input_tokens", 0)), cache_read_tokens=int(q.get("cached_input_tokens", 0)),
                   cache_write_tokens=int(q.get("cache_write_tokens", 0)), output_tokens=int(q.get("output_tokens", 0)))  # fmt: skip
    try:
        return calc_price(tokens, model, provider_id=provider_id, genai_request_timestamp=hour).total_price
    except LookupError:
        return None


@pytest.fixture
def groq_integration(workspace, admin_user, sandbox):
    from integrations.providers.groq.tests.support import sandbox_groq

    return services.integration_create(workspace=workspace, provider_slug="groq",
                                       credential={"api_key": sandbox_groq.ENTERPRISE_KEY},
                                       settings={"base_url": sandbox_groq.base_url(sandbox.url)}, created_by=admin_user)  # fmt: skip


@pytest.fixture
def fireworks_integration(workspace, admin_user, sandbox):
    from integrations.providers.fireworks.tests.support import fw

    return services.integration_create(workspace=workspace, provider_slug="fireworks", credential={"api_key": fw.API_KEY},
                                       settings={"base_url": sandbox.url + "/fireworks", "account_id": fw.ACCOUNT_ID},
                                       created_by=admin_user)  # fmt: skip


def test_groq_tokens_are_estimated_at_list_price_never_zero(groq_integration):
    """Groq reports tokens, no money: every usage key gets genai-prices' price of its tokens."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sync(groq_integration, today - 3 * DAY, today - DAY)
    usage, estimates = token_keys(groq_integration)
    assert usage and estimates.keys() == usage.keys()
    for key, q in usage.items():
        oracle = genai_oracle("groq", model_of(key), key[0], q)
        assert oracle is not None and estimates[key] > 0 and abs(estimates[key] - oracle) <= NINE, key
    assert pricing_unpriced_usage(workspace=groq_integration.workspace) == []


def test_fireworks_serverless_tokens_gpu_time_and_unknown_models(fireworks_integration):
    """Fireworks: serverless tokens at genai-prices' price, dedicated GPU seconds from the dated
    table, the tokens those deployments served not priced twice, and serverless models
    genai-prices does not know listed unpriced with their volume (never $0)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sync(fireworks_integration, today - 3 * DAY, today - DAY)
    usage, estimates = token_keys(fireworks_integration)
    serverless = {k: q for k, q in usage.items() if k[1] != "metrics"}  # "metrics": dedicated deployments' tokens
    assert serverless and not any(k[1] == "metrics" for k in estimates)
    known = unknown = 0
    for key, q in serverless.items():
        oracle = genai_oracle("fireworks", model_of(key), key[0], q)
        if oracle is None:
            assert key not in estimates
            unknown += 1
        else:
            assert estimates[key] > 0 and abs(estimates[key] - oracle) <= NINE, key
            known += 1
    assert known and unknown
    gpu = UsageRecord.objects.filter(integration=fireworks_integration, metric="compute_seconds")
    assert gpu.exists() and all(
        UsageRecord.objects.filter(integration=fireworks_integration, metric="estimated_cost", bucket_start=g.bucket_start,
                                   resource=g.resource, deployment=g.deployment, quantity__gt=0).exists()
        for g in gpu
    )  # fmt: skip
    unpriced = {(u.model, u.metric) for u in pricing_unpriced_usage(workspace=fireworks_integration.workspace)}
    missing = {(model_of(k), m) for k, q in serverless.items() if k not in estimates for m, v in q.items() if v}
    assert missing and missing <= unpriced
