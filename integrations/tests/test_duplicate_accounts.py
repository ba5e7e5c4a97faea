"""One provider account, counted once: the verify step learns the account, connecting it a
second time is refused (page and `connect`), an admin may split it, duplicates already stored
are shown with one-click fixes, and `counted_integrations` leaves the extra readers out."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from integrations.models import Integration
from integrations.services import counted_integrations
from usage.models import UsageRecord

HX = {"HTTP_HX_REQUEST": "true"}


def connect(sandbox, *extra: str, workspace: str = "acme") -> tuple[int, str]:
    out = io.StringIO()
    call_command(
        "connect",
        "openai",
        "--workspace",
        workspace,
        "--credential",
        f"api_key={sandbox.OPENAI_ADMIN_KEY}",
        "--setting",
        f"base_url={sandbox.openai_base_url}",
        *extra,
        stdout=out,
    )
    return int(out.getvalue().strip().splitlines()[-1]), out.getvalue()


def make(
    workspace,
    name: str,
    *,
    key: str = "openai:org-shared",
    share: str = "whole",
    status: str = "active",
    age_days: int = 0,
) -> Integration:
    integration = Integration(
        workspace=workspace, provider="openai", name=name, settings={"base_url": "http://127.0.0.1:9/v1"}
    )
    integration.set_credential({"api_key": "sk-admin-offline-0000000000000000wxyz"})
    integration.account_key, integration.account_share, integration.status = key, share, status
    integration.identity = {"account_id": key.partition(":")[2]}
    integration.save()
    created = timezone.now() - timedelta(days=age_days)
    Integration.objects.filter(pk=integration.pk).update(created_at=created)
    integration.created_at = created
    return integration


def spend(integration: Integration, amount: str) -> None:
    hour = datetime(2026, 12, 1, 10, tzinfo=UTC)
    UsageRecord.objects.create(
        workspace=integration.workspace,
        integration=integration,
        provider=integration.provider,
        bucket_start=hour,
        bucket_end=hour + timedelta(hours=1),
        account="org-shared",
        metric="cost",
        quantity=Decimal(amount),
        unit="USD",
    )


def counted_total(workspace) -> Decimal:
    rows = workspace.usage_records.filter(integration__in=counted_integrations(workspace), metric="cost")
    return rows.aggregate(t=Sum("quantity"))["t"] or Decimal(0)


def list_url(workspace) -> str:
    return reverse("integrations:list", kwargs={"ws": workspace.slug})


def detail_url(integration: Integration) -> str:
    return reverse("integrations:detail", kwargs={"ws": integration.workspace.slug, "pk": integration.pk})


# ---------------------------------------------------------------- connect command
def test_connect_stores_the_normalized_account_key(sandbox, workspace):
    pk, _ = connect(sandbox)
    integration = Integration.objects.get(pk=pk)
    assert integration.account_key == f"openai:{sandbox.OPENAI_ORGANIZATION_ID.casefold()}"
    assert integration.account_share == Integration.AccountShare.WHOLE


def test_connect_refuses_an_account_already_connected(sandbox, workspace):
    first, _ = connect(sandbox, "--name", "OpenAI prod")
    with pytest.raises(CommandError) as excinfo:
        connect(sandbox, "--name", "OpenAI again")
    message = str(excinfo.value)
    assert "already connected as OpenAI prod." in message and "--allow-duplicate" in message
    assert sandbox.OPENAI_ADMIN_KEY not in message
    assert list(workspace.integrations.values_list("pk", flat=True)) == [first]


def test_connect_refusal_exits_1(sandbox, workspace, capsys):
    from django.core.management import ManagementUtility

    connect(sandbox)
    argv = ["manage.py", "connect", "openai", "--workspace", "acme", "--credential", f"api_key={sandbox.OPENAI_ADMIN_KEY}",
            "--setting", f"base_url={sandbox.openai_base_url}"]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(argv).execute()
    assert exited.value.code == 1
    assert "already connected as" in capsys.readouterr().err


def test_connect_allow_duplicate_creates_a_split_integration(sandbox, workspace):
    first, _ = connect(sandbox, "--name", "OpenAI prod")
    second, output = connect(sandbox, "--name", "OpenAI research projects", "--allow-duplicate")
    assert "both are counted" in output
    integration = Integration.objects.get(pk=second)
    assert integration.account_share == Integration.AccountShare.SPLIT
    assert integration.account_key == Integration.objects.get(pk=first).account_key
    assert set(counted_integrations(workspace).values_list("pk", flat=True)) == {first, second}


def test_the_same_account_in_another_workspace_is_not_a_duplicate(sandbox, workspace, other_workspace):
    connect(sandbox)
    pk, _ = connect(sandbox, workspace="globex")
    assert Integration.objects.get(pk=pk).account_share == Integration.AccountShare.WHOLE


def test_a_disconnected_reader_does_not_block_a_new_connection(sandbox, workspace):
    first, _ = connect(sandbox)
    Integration.objects.filter(pk=first).update(status=Integration.Status.DISCONNECTED)
    second, _ = connect(sandbox)
    assert Integration.objects.get(pk=second).account_share == Integration.AccountShare.WHOLE


# ---------------------------------------------------------------- add page
def test_add_page_refuses_the_same_account_and_offers_to_split(admin_client, workspace, sandbox):
    data = {
        "name": "OpenAI prod",
        "credential_api_key": sandbox.OPENAI_ADMIN_KEY,
        "setting_base_url": sandbox.openai_base_url,
    }
    add = reverse("integrations:add", kwargs={"ws": workspace.slug, "provider": "openai"})
    assert admin_client.post(add, data).status_code == 302
    first = workspace.integrations.get()

    response = admin_client.post(add, {**data, "name": "OpenAI research"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "already connected as OpenAI prod." in body
    assert 'name="split_account"' in body and detail_url(first) in body
    assert sandbox.OPENAI_ADMIN_KEY not in body
    assert workspace.integrations.count() == 1

    response = admin_client.post(add, {**data, "name": "OpenAI research", "split_account": "on"})
    assert response.status_code == 302
    second = workspace.integrations.get(name="OpenAI research")
    assert second.account_share == Integration.AccountShare.SPLIT

    # The overlap shows on both pages.
    for integration, other in ((first, second), (second, first)):
        body = admin_client.get(detail_url(integration)).content.decode()
        assert "Shares its account" in body and other.name in body


def test_add_page_hides_the_split_choice_until_needed(admin_client, workspace):
    body = admin_client.get(
        reverse("integrations:add", kwargs={"ws": workspace.slug, "provider": "openai"})
    ).content.decode()
    assert 'name="split_account"' not in body


# ---------------------------------------------------------------- counted once
def test_counted_integrations_adds_one_account_once(workspace):
    old = make(workspace, "OpenAI", age_days=3)
    newer = make(workspace, "OpenAI copy", age_days=2)
    newest = make(workspace, "OpenAI copy 2", age_days=1)
    other = make(workspace, "Other org", key="openai:org-other")
    unknown = make(workspace, "No account learnt", key="")
    for integration in (old, newer, newest):
        spend(integration, "211.05")
    spend(other, "10")
    spend(unknown, "1")
    assert workspace.usage_records.filter(metric="cost").aggregate(t=Sum("quantity"))["t"] == Decimal("644.15")
    assert counted_total(workspace) == Decimal("222.05")
    assert set(counted_integrations(workspace)) == {old, other, unknown}


def test_split_and_duplicate_marks_decide_what_is_counted(workspace):
    whole = make(workspace, "OpenAI", age_days=2)
    split = make(workspace, "OpenAI research", share="split", age_days=1)
    dup = make(workspace, "OpenAI dup", share="duplicate")
    for integration, amount in ((whole, "100"), (split, "20"), (dup, "100")):
        spend(integration, amount)
    assert counted_total(workspace) == Decimal("120")
    assert set(counted_integrations(workspace)) == {whole, split}


def test_a_disconnected_duplicate_keeps_its_mark(workspace):
    whole = make(workspace, "OpenAI", age_days=2)
    dup = make(workspace, "OpenAI old", share="duplicate", status="disconnected")
    spend(whole, "5")
    spend(dup, "5")
    assert counted_total(workspace) == Decimal("5")


def test_counted_integrations_is_per_workspace(workspace, other_workspace):
    mine = make(workspace, "OpenAI", age_days=1)
    theirs = make(other_workspace, "OpenAI")  # same account, another company: counted there
    assert list(counted_integrations(workspace)) == [mine]
    assert list(counted_integrations(other_workspace)) == [theirs]


# ---------------------------------------------------------------- stored duplicates, one-click fixes
def duplicate_pair(workspace, spent: tuple[str, str]) -> tuple[Integration, Integration, str]:
    """Two integrations reading one account, the newer one not counted, with spend `spent`
    (older, newer) each; and the URL that resolves the newer one."""
    old = make(workspace, "OpenAI", age_days=2)
    newer = make(workspace, "OpenAI again", age_days=1)
    spend(old, spent[0])
    spend(newer, spent[1])
    return old, newer, reverse("integrations:resolve_duplicate", kwargs={"ws": workspace.slug, "pk": newer.pk})


def test_list_shows_stored_duplicates_with_fixes(admin_client, workspace):
    old = make(workspace, "OpenAI", age_days=2)
    newer = make(workspace, "OpenAI again", age_days=1)
    body = admin_client.get(list_url(workspace)).content.decode()
    assert "read the same" in body and "org-shared" in body
    assert "Not counted" in body
    for action in ("pause", "disconnect", "split"):
        assert f'value="{action}"' in body
    resolve = reverse("integrations:resolve_duplicate", kwargs={"ws": workspace.slug, "pk": newer.pk})
    assert resolve in body
    resolve_old = reverse("integrations:resolve_duplicate", kwargs={"ws": workspace.slug, "pk": old.pk})
    assert resolve_old not in body  # the fix is offered for the newer one


def test_one_click_pause_stops_counting_the_newer_one(admin_client, workspace):
    old, newer, resolve = duplicate_pair(workspace, spent=("7", "7"))
    response = admin_client.post(resolve, {"resolution": "pause"}, follow=True)
    newer.refresh_from_db()
    assert newer.status == Integration.Status.PAUSED and newer.account_share == Integration.AccountShare.DUPLICATE
    body = response.content.decode()
    assert "no longer counted" in body and "read the same" not in body
    assert counted_total(workspace) == Decimal("7")
    detail = admin_client.get(detail_url(newer)).content.decode()
    assert "not counted" in detail.lower() and old.name in detail


def test_one_click_disconnect_keeps_the_data_uncounted(admin_client, workspace):
    _old, newer, resolve = duplicate_pair(workspace, spent=("7", "7"))
    admin_client.post(resolve, {"resolution": "disconnect"})
    newer.refresh_from_db()
    assert newer.status == Integration.Status.DISCONNECTED and newer.get_credential() == {}
    assert newer.usage_records.exists() and counted_total(workspace) == Decimal("7")


def test_one_click_split_counts_both(admin_client, workspace):
    _old, newer, resolve = duplicate_pair(workspace, spent=("7", "3"))
    body = admin_client.post(resolve, {"resolution": "split"}, follow=True).content.decode()
    newer.refresh_from_db()
    assert newer.account_share == Integration.AccountShare.SPLIT and newer.status == Integration.Status.ACTIVE
    assert "both are counted" in body and "read the same" not in body
    assert counted_total(workspace) == Decimal("10")


def test_count_again_undoes_a_duplicate_mark(admin_client, workspace):
    make(workspace, "OpenAI", age_days=2)
    newer = make(workspace, "OpenAI again", share="duplicate", status="paused", age_days=1)
    count_again = reverse("integrations:count_again", kwargs={"ws": workspace.slug, "pk": newer.pk})
    assert count_again in admin_client.get(detail_url(newer)).content.decode()
    admin_client.post(count_again)
    newer.refresh_from_db()
    assert newer.account_share == Integration.AccountShare.WHOLE
    assert "read the same" in admin_client.get(list_url(workspace)).content.decode()


def test_fixes_are_admin_only_and_tenant_scoped(member_client, outsider_client, admin_client, workspace):
    make(workspace, "OpenAI", age_days=2)
    newer = make(workspace, "OpenAI again", age_days=1)
    resolve = reverse("integrations:resolve_duplicate", kwargs={"ws": workspace.slug, "pk": newer.pk})
    assert member_client.post(resolve, {"resolution": "pause"}).status_code == 403
    assert outsider_client.post(resolve, {"resolution": "pause"}).status_code in (403, 404)
    assert admin_client.get(resolve).status_code == 405
    refused = admin_client.post(resolve, {"resolution": "delete-everything"}, follow=True)
    assert "Nothing changed" in refused.content.decode()
    newer.refresh_from_db()
    assert newer.status == Integration.Status.ACTIVE and newer.account_share == Integration.AccountShare.WHOLE


def test_test_connection_learns_the_account_key(admin_client, openai_integration, sandbox):
    assert openai_integration.account_key == ""
    admin_client.post(reverse("integrations:test", kwargs={"ws": "acme", "pk": openai_integration.pk}), **HX)
    openai_integration.refresh_from_db()
    assert openai_integration.account_key == f"openai:{sandbox.OPENAI_ORGANIZATION_ID.casefold()}"


def test_the_explorer_adds_one_account_once(admin_client, workspace):
    """Three integrations reading one OpenAI organization: the Usage page's cost is the
    organization's once (211.05 + the other org's 10), never three times."""
    from usage.rollups import rebuild_workspace

    for days, name in ((3, "OpenAI"), (2, "OpenAI copy"), (1, "OpenAI copy 2")):
        spend(make(workspace, name, age_days=days), "211.05")
    spend(make(workspace, "Other org", key="openai:org-other"), "10")
    rebuild_workspace(workspace)
    url = reverse("usage:explorer", kwargs={"ws": workspace.slug})
    page = admin_client.get(url, {"date_from": "2026-12-01", "date_to": "2026-12-01"}).content.decode()
    assert "221.05" in page
    assert "643.15" not in page and "633.15" not in page
