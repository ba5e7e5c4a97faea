"""Attribution: the pure matcher (precedence, wildcards), attribution at ingest, and the default
rule a provider gets when it is connected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest

from integrations.engine import integration_sync
from integrations.providers.base import UsageSample
from integrations.providers.registry import get_provider
from usage.attribution import (
    UNATTRIBUTED,
    Attribution,
    Matcher,
    attribute,
    escape_pattern,
)
from usage.models import Application, AttributionRule, UsageRecord
from usage.services import DEFAULT_RULE_PRIORITY, attribution_ensure_default
from usage.store import usage_store_samples

T0 = datetime(2026, 11, 1, tzinfo=UTC)
_ids = count(1)


def rule(
    provider: str = "openai",
    *,
    priority: int = 100,
    app: int = 1,
    license: int | None = None,
    pk: int | None = None,
    **patterns: str,
) -> AttributionRule:
    """An unsaved rule with an id: the matcher needs no database."""
    r = AttributionRule(provider=provider, priority=priority, application_id=app, license_id=license, **patterns)
    r.pk = pk if pk is not None else next(_ids)
    return r


def dims(**values: str) -> dict[str, str]:
    return values


# ---------------------------------------------------------------- precedence
def test_first_match_by_priority_wins():
    broad = rule(priority=50, app=1)
    narrow = rule(priority=10, app=2, model="gpt-4o")
    assert attribute([broad, narrow], "openai", dims(model="gpt-4o")).application_id == 2
    assert attribute([broad, narrow], "openai", dims(model="gpt-4o-mini")).application_id == 1


def test_equal_priorities_are_tried_by_id():
    older = rule(priority=100, app=1, pk=5)
    newer = rule(priority=100, app=2, pk=9)
    assert attribute([newer, older], "openai", dims(model="x")) == Attribution(1, None, 5)


def test_the_result_names_application_license_and_rule():
    r = rule(app=7, license=3, pk=42, project="proj_a")
    assert attribute([r], "openai", dims(project="proj_a")) == Attribution(7, 3, 42)


def test_no_match_is_unattributed():
    assert attribute([rule(model="gpt-4o")], "openai", dims(model="o1")) == UNATTRIBUTED
    assert attribute([], "openai", dims()) == UNATTRIBUTED


# ---------------------------------------------------------------- patterns
@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("gpt-4o", "gpt-4o", True),  # exact
        ("gpt-4o", "gpt-4o-mini", False),
        ("gpt-4o", "GPT-4o", False),  # case matters
        ("gpt-4o*", "gpt-4o-mini", True),  # *
        ("gpt-4o*", "gpt-4o", True),
        ("*mini", "gpt-4o-mini", True),
        ("proj_?", "proj_a", True),  # ?
        ("proj_?", "proj_ab", False),
        ("proj_[ab]", "proj_b", True),  # [ab]
        ("proj_[ab]", "proj_c", False),
        ("proj_[!ab]", "proj_c", True),
        ("*", "", True),  # a wildcard also matches a dimension the provider leaves empty
        ("x", "", False),
    ],
)
def test_patterns(pattern, value, matches):
    assert (attribute([rule(model=pattern)], "openai", dims(model=value)) != UNATTRIBUTED) is matches


def test_an_empty_pattern_matches_anything():
    catch_all = rule()
    assert attribute([catch_all], "openai", dims(model="anything", project="p", region="eu")).rule_id == catch_all.pk
    assert attribute([catch_all], "openai", dims()).rule_id == catch_all.pk


def test_every_non_empty_pattern_must_match():
    r = rule(project="proj_a", model="gpt-*")
    assert attribute([r], "openai", dims(project="proj_a", model="gpt-4o")) != UNATTRIBUTED
    assert attribute([r], "openai", dims(project="proj_b", model="gpt-4o")) == UNATTRIBUTED


def test_the_provider_must_be_equal():
    r = rule(provider="anthropic")
    assert attribute([r], "openai", dims()) == UNATTRIBUTED
    assert attribute([r], "anthropic", dims()).rule_id == r.pk


@pytest.mark.parametrize("field", AttributionRule.MATCH_FIELDS)
def test_every_dimension_can_be_matched(field):
    r = rule(**{field: "v*"})
    assert attribute([r], "openai", {field: "value"}) != UNATTRIBUTED
    assert attribute([r], "openai", {field: "other"}) == UNATTRIBUTED


def test_escaped_values_match_exactly():
    value = "model[beta]*?"
    r = rule(model=escape_pattern(value))
    assert attribute([r], "openai", dims(model=value)) != UNATTRIBUTED
    assert attribute([r], "openai", dims(model="modelb")) == UNATTRIBUTED


def test_the_matcher_takes_samples_records_and_dicts():
    matcher = Matcher([rule(app=3, model="gpt-4o")])
    sample = UsageSample(bucket_start=T0, bucket_end=T0, metric="requests", quantity=Decimal(1), model="gpt-4o")
    record = UsageRecord(model="gpt-4o")
    assert matcher.attribute("openai", sample).application_id == 3
    assert matcher.attribute("openai", record).application_id == 3
    assert matcher.attribute("openai", {"model": "gpt-4o"}).application_id == 3


# ---------------------------------------------------------------- at ingest
def _samples(*models: str) -> list[UsageSample]:
    return [
        UsageSample(
            bucket_start=T0 + timedelta(hours=i),
            bucket_end=T0 + timedelta(hours=i + 1),
            metric="input_tokens",
            quantity=Decimal(10),
            model=m,
            project="proj_a",
        )
        for i, m in enumerate(models)
    ]


def test_rows_are_attributed_when_stored(workspace, other_workspace, integration):
    chatbot = Application.objects.create(workspace=workspace, name="Chatbot")
    search = Application.objects.create(workspace=workspace, name="Search")
    theirs = Application.objects.create(workspace=other_workspace, name="Theirs")
    AttributionRule.objects.create(workspace=other_workspace, provider="openai", application=theirs, priority=0)
    AttributionRule.objects.create(workspace=workspace, provider="anthropic", application=search, priority=0)
    gpt = AttributionRule.objects.create(workspace=workspace, provider="openai", model="gpt-*", application=chatbot)
    usage_store_samples(integration=integration, samples=_samples("gpt-4o", "o1"))
    rows = {r.model: r for r in UsageRecord.objects.all()}
    assert (rows["gpt-4o"].application, rows["gpt-4o"].rule) == (chatbot, gpt)
    assert (rows["o1"].application, rows["o1"].rule) == (None, None)


def test_a_restored_row_takes_the_current_attribution(workspace, integration):
    chatbot = Application.objects.create(workspace=workspace, name="Chatbot")
    usage_store_samples(integration=integration, samples=_samples("gpt-4o"))
    assert UsageRecord.objects.get().application is None
    AttributionRule.objects.create(workspace=workspace, provider="openai", application=chatbot)
    usage_store_samples(integration=integration, samples=_samples("gpt-4o"))
    assert UsageRecord.objects.get().application == chatbot


# ---------------------------------------------------------------- the default rule
def test_connecting_a_provider_attributes_its_usage_to_the_vendors_application(workspace, connected_openai):
    integration = connected_openai
    application = workspace.applications.get()
    assert (application.name, application.vendor, application.category) == ("OpenAI", "OpenAI", "AI provider")
    default = workspace.attribution_rules.get()
    assert (default.provider, default.is_default, default.priority) == ("openai", True, DEFAULT_RULE_PRIORITY)
    assert all(not getattr(default, f) for f in AttributionRule.MATCH_FIELDS)

    run = integration_sync(integration_id=integration.pk)
    assert run.status == "success", run.error
    assert integration.usage_records.exists()
    assert not integration.usage_records.filter(application__isnull=True).exists()
    assert set(integration.usage_records.values_list("application", "rule").distinct()) == {
        (application.pk, default.pk)
    }


def test_a_second_connection_reuses_the_application_and_rule(workspace):
    provider = get_provider("openai")
    assert attribution_ensure_default(workspace=workspace, provider=provider) is not None
    assert attribution_ensure_default(workspace=workspace, provider=provider) is None
    assert (workspace.applications.count(), workspace.attribution_rules.count()) == (1, 1)


def test_an_existing_application_of_that_name_is_reused(workspace):
    mine = Application.objects.create(workspace=workspace, name="amazon web services", owner="Infra")
    rule_ = attribution_ensure_default(workspace=workspace, provider=get_provider("aws_bedrock"))
    assert rule_.application == mine
    assert workspace.applications.count() == 1


def test_a_cloud_provider_gets_a_cloud_platform(workspace):
    rule_ = attribution_ensure_default(workspace=workspace, provider=get_provider("aws_bedrock"))
    assert (rule_.application.name, rule_.application.category) == ("Amazon Web Services", "Cloud platform")
