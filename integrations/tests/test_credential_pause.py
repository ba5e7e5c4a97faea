"""The credential pause counts credential rejections in a row, and nothing else.

Rule (engine.PAUSE_AFTER_CREDENTIAL_FAILURES): a sync refused with a rejected credential adds
one to the streak; any other outcome ends it (a success, or a failure of another kind: a
provider that throttles or errors is not saying the key is dead); rotating the key or resuming
starts from zero. Three in a row pause the integration.
"""

from __future__ import annotations

from integrations import engine, services
from integrations.models import Integration, SyncRun

USAGE_PATH = "/openai/v1/organization/usage"


def _sync(integration: Integration) -> SyncRun:
    return engine.integration_sync(integration_id=integration.pk, trigger="schedule")


def _fail(integration: Integration, sandbox, status: int) -> SyncRun:
    sandbox.clear_faults()
    sandbox.fault(USAGE_PATH, status, times=1000)
    run = _sync(integration)
    assert run.status == SyncRun.Status.FAILED
    integration.refresh_from_db()
    return run


def _pause_events(integration: Integration):
    return integration.events.filter(category="credential", message__startswith="Paused after")


def test_one_401_after_seven_throttled_or_failing_syncs_does_not_pause(openai_integration, sandbox):
    for status in (429, 503, 429, 500, 429, 502, 429):
        run = _fail(openai_integration, sandbox, status)
        assert run.error_category in ("rate_limit", "provider")
    assert openai_integration.consecutive_failures == 7
    assert openai_integration.consecutive_credential_failures == 0

    run = _fail(openai_integration, sandbox, 401)
    assert run.error_category == "credential"
    assert openai_integration.status == Integration.Status.ERROR  # needs attention, still scheduled
    assert openai_integration.next_sync_at is not None
    assert (openai_integration.consecutive_failures, openai_integration.consecutive_credential_failures) == (8, 1)
    assert not _pause_events(openai_integration).exists()


def test_three_401_in_a_row_pause_and_the_message_counts_three(openai_integration, sandbox):
    _fail(openai_integration, sandbox, 503)  # an earlier outage is not part of the count
    for expected in (1, 2):
        _fail(openai_integration, sandbox, 401)
        assert openai_integration.status == Integration.Status.ERROR
        assert openai_integration.consecutive_credential_failures == expected
    _fail(openai_integration, sandbox, 401)
    assert openai_integration.status == Integration.Status.PAUSED
    assert openai_integration.next_sync_at is None
    assert openai_integration.consecutive_failures == 4
    event = _pause_events(openai_integration).get()
    assert event.message == "Paused after 3 syncs in a row were refused with a rejected credential."
    assert openai_integration.pk not in engine.integration_dispatch_due()


def test_another_kind_of_failure_between_rejections_ends_the_streak(openai_integration, sandbox):
    _fail(openai_integration, sandbox, 401)
    _fail(openai_integration, sandbox, 429)
    assert openai_integration.consecutive_credential_failures == 0
    _fail(openai_integration, sandbox, 401)
    assert openai_integration.consecutive_credential_failures == 1
    assert openai_integration.status == Integration.Status.ERROR

    _fail(openai_integration, sandbox, 401)
    assert openai_integration.status == Integration.Status.ERROR  # 4 rejections, but 2 in a row
    _fail(openai_integration, sandbox, 401)
    assert openai_integration.status == Integration.Status.PAUSED
    assert _pause_events(openai_integration).get().message.startswith("Paused after 3 syncs in a row")


def test_a_success_resets_both_counts(openai_integration, sandbox):
    _fail(openai_integration, sandbox, 401)
    _fail(openai_integration, sandbox, 401)
    sandbox.clear_faults()
    assert _sync(openai_integration).status == SyncRun.Status.SUCCESS
    openai_integration.refresh_from_db()
    assert (openai_integration.consecutive_failures, openai_integration.consecutive_credential_failures) == (0, 0)
    _fail(openai_integration, sandbox, 401)
    assert openai_integration.status == Integration.Status.ERROR
    assert openai_integration.consecutive_credential_failures == 1


def test_a_rotated_key_starts_a_new_streak(openai_integration, sandbox):
    _fail(openai_integration, sandbox, 401)
    _fail(openai_integration, sandbox, 401)
    sandbox.clear_faults()
    services.integration_rotate_credential(
        integration=openai_integration, credential={"api_key": sandbox.OPENAI_ADMIN_KEY}
    )
    openai_integration.refresh_from_db()
    assert openai_integration.consecutive_credential_failures == 0
    assert openai_integration.status == Integration.Status.ACTIVE
    _fail(openai_integration, sandbox, 401)
    assert openai_integration.status == Integration.Status.ERROR  # one rejection of the new key
