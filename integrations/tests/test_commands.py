"""connect / sync through call_command, against the sandbox's fake OpenAI organization."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command, load_command_class

from accounts.models import Workspace
from integrations.models import Integration, SyncRun
from usage.models import DIMENSION_FIELDS, UsageRecord

DAY1, DAY2 = "2025-03-01", "2025-03-03"
SINCE = datetime(2025, 3, 1, tzinfo=UTC)
UNTIL = datetime(2025, 3, 4, tzinfo=UTC)  # --until is inclusive of its day
# The sandbox's OpenAI fields → our metric names (providers.md, "Mapping").
USAGE_METRICS = {
    "input_tokens": "input_tokens",
    "input_cached_tokens": "cached_input_tokens",
    "input_cache_write_tokens": "cache_write_tokens",
    "output_tokens": "output_tokens",
    "num_model_requests": "requests",
}
KEY = "sk-admin-commandtest-Vb5nQ8wE2rT6yU1iO9pA3sD7"


def connect(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    call_command("connect", *args, stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert lines[-1].isdigit(), lines
    return int(lines[-1]), out.getvalue()


def sync(*args: str) -> str:
    out = io.StringIO()
    call_command("sync", *args, stdout=out)
    return out.getvalue()


def connect_sandbox(sandbox, *extra: str, key: str | None = None) -> int:
    pk, _ = connect(
        "openai",
        "--workspace",
        "acme",
        "--credential",
        f"api_key={key or sandbox.OPENAI_ADMIN_KEY}",
        "--setting",
        f"base_url={sandbox.openai_base_url}",
        *extra,
    )
    return pk


def _totals(items: Iterable, key: Callable) -> dict:
    totals: dict = defaultdict(Decimal)
    for item in items:
        k, quantity = key(item)
        totals[k] += Decimal(quantity)
    return dict(totals)


def _truth_usage(dimension: Callable) -> dict:
    from sandbox.openai import truth_usage

    totals = _totals(
        ((row, field, metric) for row in truth_usage(SINCE, UNTIL) for field, metric in USAGE_METRICS.items()),
        lambda item: ((dimension(item[0]), item[2]), getattr(item[0], item[1])),
    )
    return {k: v for k, v in totals.items() if v}


def _stored_usage(pk: int, dimension: Callable) -> dict:
    records = UsageRecord.objects.filter(integration_id=pk, stream="usage_completions").exclude(metric="estimated_cost")
    totals = _totals(records, lambda r: ((dimension(r), r.metric), r.quantity))
    return {k: v for k, v in totals.items() if v}  # a metric reported as 0 is the same as none


def _snapshot(pk: int) -> list[tuple]:
    fields = ("bucket_start", "bucket_end", *DIMENSION_FIELDS, "metric", "quantity", "unit")
    return sorted(UsageRecord.objects.filter(integration_id=pk).values_list(*fields))


# ------------------------------------------------------------------ connect
def test_connect_without_verify_creates_workspace_and_prints_the_id_last(db):
    pk, output = connect(
        "openai", "--workspace", "initech", "--credential", f"api_key={KEY}", "--no-verify", "--name", "Main org"
    )
    integration = Integration.objects.get(pk=pk)
    assert integration.workspace.slug == "initech" and integration.workspace.name == "Initech"
    assert integration.name == "Main org" and integration.verified_at is None
    assert integration.get_credential() == {"api_key": KEY}
    assert KEY not in output


def test_connect_uses_an_existing_workspace(workspace):
    pk, _ = connect("openai", "--workspace", "acme", "--credential", f"api_key={KEY}", "--no-verify")
    assert Integration.objects.get(pk=pk).workspace == workspace
    assert Workspace.objects.count() == 1


def test_connect_reads_an_at_path_value_from_a_file(db, tmp_path):
    secret_file = tmp_path / "openai.key"
    secret_file.write_text(KEY + "\n")
    pk, _ = connect("openai", "--workspace", "acme", "--credential", f"api_key=@{secret_file}", "--no-verify")
    assert Integration.objects.get(pk=pk).get_credential() == {"api_key": KEY}


def test_connect_with_a_missing_credential_file_names_the_file(db, tmp_path):
    with pytest.raises(CommandError, match=r"missing\.key"):
        connect("openai", "--workspace", "acme", "--credential", f"api_key=@{tmp_path / 'missing.key'}", "--no-verify")
    assert not Workspace.objects.exists()


def test_connect_unknown_provider_lists_the_known_ones(db):
    with pytest.raises(CommandError, match=r"Unknown provider 'nope'.*openai"):
        connect("nope", "--workspace", "acme", "--credential", f"api_key={KEY}")


def test_connect_unknown_credential_or_setting_key_is_a_clear_error(db):
    with pytest.raises(CommandError, match=r"Unknown --credential key 'token'.*api_key"):
        connect("openai", "--workspace", "acme", "--credential", f"token={KEY}", "--no-verify")
    with pytest.raises(CommandError, match=r"Unknown --setting key 'region'.*base_url"):
        connect(
            "openai", "--workspace", "acme", "--credential", f"api_key={KEY}", "--setting", "region=eu", "--no-verify"
        )
    with pytest.raises(CommandError, match="KEY=VALUE") as excinfo:
        connect("openai", "--workspace", "acme", "--credential", KEY, "--no-verify")
    assert KEY not in str(excinfo.value)
    assert not Integration.objects.exists() and not Workspace.objects.exists()


def test_connect_refuses_a_wrong_key_type_before_any_call(db):
    project_key = "sk-proj-commandtest-Vb5nQ8wE2rT6yU1iO9pA3sD7"
    with pytest.raises(CommandError) as excinfo:
        connect("openai", "--workspace", "acme", "--credential", f"api_key={project_key}", "--no-verify")
    message = str(excinfo.value)
    assert message.startswith("scope:") and "Hint:" in message
    assert project_key not in message and "Vb5nQ8wE2rT6yU1i" not in message
    assert not Workspace.objects.exists()  # the workspace made for it is not left behind


def test_connect_verifies_against_the_sandbox(sandbox, workspace):
    pk = connect_sandbox(sandbox)
    integration = Integration.objects.get(pk=pk)
    assert integration.verified_at is not None
    assert integration.identity["account_id"] == sandbox.OPENAI_ORGANIZATION_ID
    assert integration.settings == {"base_url": sandbox.openai_base_url}


def test_connect_with_a_revoked_key_fails_with_category_and_hint(sandbox, db):
    with pytest.raises(CommandError) as excinfo:
        connect_sandbox(sandbox, key=sandbox.OPENAI_REVOKED_KEY)
    message = str(excinfo.value)
    assert message.startswith("credential:") and "HTTP 401" in message and "Hint:" in message
    assert sandbox.OPENAI_REVOKED_KEY not in message
    assert not Integration.objects.exists() and not Workspace.objects.exists()


# ------------------------------------------------------------------ sync
def test_sync_stores_the_true_totals_per_model_project_and_day(sandbox, workspace):
    from sandbox.openai import truth_costs

    pk = connect_sandbox(sandbox)
    output = sync(str(pk), "--since", DAY1, "--until", DAY2)
    run = SyncRun.objects.get(integration_id=pk)
    assert run.status == SyncRun.Status.SUCCESS and run.trigger == SyncRun.Trigger.COMMAND
    assert (run.window_start, run.window_end) == (SINCE, UNTIL)
    assert "2025-03-01T00:00:00Z → 2025-03-04T00:00:00Z" in output
    assert f"Rows written: {run.rows_written}" in output and f"Provider calls: {run.provider_calls}" in output
    assert f"Rows removed (no longer reported): {run.rows_removed}" in output
    assert run.rows_written > 0 and run.provider_calls > 0

    by_model, by_project = (lambda x: x.model), (lambda x: getattr(x, "project_id", None) or x.project)
    by_day = lambda x: (getattr(x, "hour_start", None) or x.bucket_start).date()  # noqa: E731
    for dimension in (by_model, by_project, by_day):
        truth = _truth_usage(dimension)
        assert truth  # the sandbox has usage in these days
        assert _stored_usage(pk, dimension) == truth

    costs = truth_costs(SINCE, UNTIL)
    assert costs
    stored_costs = UsageRecord.objects.filter(integration_id=pk, metric="cost")
    assert {r.unit for r in stored_costs} == {"USD"}
    for truth_key, stored_key in (
        (lambda c: c.project_id, lambda r: r.project),
        (lambda c: c.day.date(), lambda r: r.bucket_start.date()),
        (lambda c: c.line_item.split(", ")[0], lambda r: r.model),
    ):
        assert _totals(stored_costs, lambda r, key=stored_key: (key(r), r.quantity)) == _totals(
            costs, lambda c, key=truth_key: (key(c), c.amount)
        )

    # The same window again stores nothing new and changes nothing.
    before = _snapshot(pk)
    sync(str(pk), "--since", DAY1, "--until", DAY2)
    assert _snapshot(pk) == before
    assert SyncRun.objects.filter(integration_id=pk, status=SyncRun.Status.SUCCESS).count() == 2


def test_sync_fails_with_exit_code_1_and_the_category(sandbox, workspace):
    pk = connect_sandbox(sandbox)
    sandbox.fault("/openai/v1/organization/usage", 401, times=10)
    with pytest.raises(CommandError) as excinfo:
        sync(str(pk), "--since", DAY1, "--until", DAY1)
    assert excinfo.value.returncode == 1
    assert "[credential]" in str(excinfo.value)
    run = SyncRun.objects.get(integration_id=pk)
    assert run.status == SyncRun.Status.FAILED and run.error_category == "credential"


def test_sync_with_a_revoked_key_exits_1_from_the_command_line(sandbox, workspace, capsys, monkeypatch):
    pk = connect_sandbox(sandbox, "--no-verify", key=sandbox.OPENAI_REVOKED_KEY)
    # run_from_argv closes every connection when it ends; the test's transaction needs its own.
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)
    command = load_command_class("integrations", "sync")
    with pytest.raises(SystemExit) as excinfo:
        command.run_from_argv(["manage.py", "sync", str(pk), "--since", DAY1, "--until", DAY1])
    assert excinfo.value.code == 1
    captured = capsys.readouterr()
    assert "Sync failed [credential]" in captured.err and "Hint:" in captured.err
    assert sandbox.OPENAI_REVOKED_KEY not in captured.out + captured.err


def test_sync_of_a_paused_integration_exits_1(workspace):
    pk, _ = connect("openai", "--workspace", "acme", "--credential", f"api_key={KEY}", "--no-verify")
    Integration.objects.filter(pk=pk).update(status=Integration.Status.PAUSED)
    with pytest.raises(CommandError, match=r"Not synced.*paused") as excinfo:
        sync(str(pk))
    assert excinfo.value.returncode == 1
    assert not SyncRun.objects.exists()


def test_sync_when_another_sync_holds_the_lock_exits_1(workspace):
    pk, _ = connect("openai", "--workspace", "acme", "--credential", f"api_key={KEY}", "--no-verify")
    Integration.objects.filter(pk=pk).update(
        lock_token="other", lock_expires_at=datetime.now(UTC) + timedelta(minutes=5)
    )
    with pytest.raises(CommandError, match="already being synced") as excinfo:
        sync(str(pk))
    assert excinfo.value.returncode == 1


def test_sync_argument_errors(db):
    with pytest.raises(CommandError, match="No integration with id 999"):
        sync("999")
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        sync("999", "--since", "2025-3-1x")
    with pytest.raises(CommandError, match="before"):
        sync("999", "--since", "2025-03-02", "--until", "2025-03-01")


def test_until_is_inclusive_of_its_day(sandbox, workspace):
    pk = connect_sandbox(sandbox)
    sync(str(pk), "--since", DAY1, "--until", DAY1)
    run = SyncRun.objects.get(integration_id=pk)
    assert (run.window_start, run.window_end) == (SINCE, SINCE + timedelta(days=1))
    days = {d.date() for d in UsageRecord.objects.filter(integration_id=pk).values_list("bucket_start", flat=True)}
    assert days == {date(2025, 3, 1)}
