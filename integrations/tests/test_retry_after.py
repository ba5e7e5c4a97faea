"""Retry-After is the provider's word, bounded: never a crash, never a sync scheduled out of sight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from django.utils import timezone

from integrations import engine
from integrations.http import RETRY_AFTER_CEILING, parse_retry_after
from integrations.models import Integration, SyncRun
from integrations.providers.base import RateLimited

USAGE_PATH = "/openai/v1/organization/usage"
CEILING = RETRY_AFTER_CEILING.total_seconds()


def _http_date(delta: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + delta, usegmt=True)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("99999999999", CEILING),  # a real number, just far too long: the ceiling
        ("9" * 400, None),  # no finite float holds it, like 1e400
        ("1e400", None),  # float("1e400") is inf
        ("inf", None),
        ("Infinity", None),
        ("nan", None),
        ("-5", None),
        ("0x10", None),
        ("1_000", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Fri, 31 Dec 9999 23:59:59 GMT", None),  # an HTTP-date far away: absent
        ("Mon, 01 Jan 0001 00:00:00 GMT", 0.0),  # in the past: now
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Thu, 01 Jan 1970 00:00:00 -0000", 0.0),  # no zone: taken as GMT
        ("Thu, 32 Jan 1970 00:00:00 GMT", None),
    ],
)
def test_retry_after_is_bounded_and_unusable_values_are_absent(header, expected):
    assert parse_retry_after(header) == expected


def test_an_http_date_within_the_ceiling_is_honoured():
    seconds = parse_retry_after(_http_date(timedelta(hours=1)))
    assert seconds is not None and 3590 <= seconds <= 3600
    assert parse_retry_after(_http_date(RETRY_AFTER_CEILING + timedelta(hours=1))) is None


def test_the_engine_waits_no_longer_than_its_back_off_ceiling():
    assert engine.MAX_BACKOFF == RETRY_AFTER_CEILING == timedelta(hours=6)


@pytest.mark.parametrize(
    "header",
    [
        "1e400",
        "99999999999",
        "nan",
        "inf",
        "-30",
        "tomorrow",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "Sat, 01 Jan 2200 00:00:00 GMT",
    ],
)
def test_a_hostile_retry_after_fails_the_sync_as_rate_limited_and_reschedules_within_6_hours(
    openai_integration, sandbox, header
):
    sandbox.fault(USAGE_PATH, 429, times=1000, headers={"Retry-After": header})
    before = timezone.now()
    run = engine.integration_sync(integration_id=openai_integration.pk, trigger="command")

    assert run.status == SyncRun.Status.FAILED
    assert run.error_category == "rate_limit"
    openai_integration.refresh_from_db()
    assert openai_integration.status == Integration.Status.ACTIVE  # throttling fixes itself
    assert openai_integration.last_error_category == "rate_limit"
    assert "rate limited" in openai_integration.last_error_message.lower()
    assert openai_integration.consecutive_failures == 1
    assert openai_integration.last_sync_at >= before
    assert before < openai_integration.next_sync_at <= timezone.now() + timedelta(hours=6)
    event = openai_integration.events.get(sync_run=run)
    assert (event.category, event.http_status) == ("rate_limit", 429)


def test_a_huge_retry_after_waits_exactly_the_ceiling(openai_integration, sandbox):
    sandbox.fault(USAGE_PATH, 429, times=1000, headers={"Retry-After": "99999999999"})
    before = timezone.now()
    engine.integration_sync(integration_id=openai_integration.pk, trigger="command")
    openai_integration.refresh_from_db()
    assert before + timedelta(hours=6) <= openai_integration.next_sync_at <= timezone.now() + timedelta(hours=6)


@pytest.mark.parametrize("retry_after", [float("inf"), float("nan"), -1.0, 1e300, 10**30])
def test_a_connectors_own_unbounded_retry_after_never_crashes_the_failure_handler(
    openai_integration, monkeypatch, retry_after
):
    # Connectors may build RateLimited from headers of their own (reset times, milliseconds).
    provider = openai_integration.provider_obj

    def throttled(*args, **kwargs):
        raise RateLimited("Rate limited: slow down", retry_after=retry_after, http_status=429)

    monkeypatch.setattr(type(provider), "fetch", throttled)
    run = engine.integration_sync(integration_id=openai_integration.pk, trigger="command")
    assert (run.status, run.error_category) == (SyncRun.Status.FAILED, "rate_limit")
    openai_integration.refresh_from_db()
    assert openai_integration.last_error_category == "rate_limit"
    assert timezone.now() < openai_integration.next_sync_at <= timezone.now() + timedelta(hours=6)
