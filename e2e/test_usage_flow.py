"""The whole product in a real browser: sign in → connect OpenAI → Sync now → attribute → export.

The user story: Ada, an admin of Acme Corp, connects the company's OpenAI organization (the
sandbox) by typing its Admin key into the Connect form, and presses Sync now. Every row lands
attributed to the "OpenAI" application, through the default rule that connecting created.
Acme wants spend per product, not one bucket per vendor, so Ada deletes that catch-all rule:
the rows are re-attributed in the background and show up as "Unattributed usage", grouped.
She turns the "Customer chatbot" project's group into a rule for a new application,
"Support Bot"; the group leaves the unattributed list and the usage explorer shows the
application. Finally she downloads the CSV and finds the docs/architecture.md columns, with "Support Bot"
on exactly the chatbot project's rows.

The test creates only the workspace and its admin; everything after that happens through the
pages (the sign-in form, not force_login), and the database is only read, to know what the
pages must show. Expected figures come from the sandbox's own truth function for the window
the sync recorded, so they are real numbers, not whatever the page happens to say. Celery runs eagerly (doow/settings_test.py), and
the live server answers requests in autocommit mode, so `transaction.on_commit` fires at
once: Sync now and re-attribution run inside the request that starts them, in the live
server's thread, exactly the code a worker would run.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from accounts.models import Workspace
from doow.templatetags.formats import compact
from e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Page, expect, fill_sign_in
from integrations.models import Integration, SyncRun
from sandbox import openai as sandbox_openai
from usage.models import UsageRecord

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The export contract of docs/architecture.md ("Management commands"), spelled out rather than imported,
# so a change to the exporter cannot silently change what this test expects.
CSV_COLUMNS = [
    "provider", "integration", "bucket_start", "bucket_end", "account", "project", "region", "model",
    "deployment", "endpoint", "resource", "operation", "api_key", "metric", "quantity", "unit",
    "application", "license", "provenance", "integration_name",
    "service_tier", "batch", "context_window", "inference_geo", "speed",  # appended by issue 13
]  # fmt: skip
CHATBOT = sandbox_openai.PROJECTS[0]  # "Customer chatbot"
assert CHATBOT.name == "Customer chatbot"
APPLICATION = "Support Bot"
ISO_HOUR = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:00:00Z")  # OpenAI buckets are hours (costs: days)

Screenshot = Callable[[str], Path]


def test_sign_in_connect_sync_attribute_and_export(
    page: Page, sandbox: Any, acme_admin: Workspace, screenshot: Screenshot
) -> None:
    sign_in(page, screenshot)
    integration = connect_openai(page, sandbox, screenshot)
    input_tokens = sync_now(page, integration, screenshot)
    delete_default_rule(page, integration, screenshot)
    create_rule_from_unattributed_group(page, integration, screenshot)
    explore_and_download_csv(page, integration, input_tokens, screenshot)


# ---------------------------------------------------------------- the steps
def sign_in(page: Page, screenshot: Screenshot) -> None:
    page.goto("/")  # signed out: the home page sends us to the sign-in form
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    fill_sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
    screenshot("sign-in")
    page.get_by_role("button", name="Sign in").click()
    # Everyone lands on the spend overview; an admin goes on to Company Settings from the top bar.
    expect(page.get_by_role("heading", name="Spend overview", level=1)).to_be_visible()
    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Company Settings").click()
    expect(page.get_by_role("heading", name="Integrations", level=1)).to_be_visible()
    expect(page.get_by_role("navigation", name="Company Settings sections")).to_be_visible()


def connect_openai(page: Page, sandbox: Any, screenshot: Screenshot) -> Integration:
    _settings_tab(page, "Integrations").click()
    page.get_by_role("link", name=re.compile(r"^OpenAI\b.*Connect")).click()
    expect(page.get_by_role("heading", name="Connect OpenAI")).to_be_visible()
    page.get_by_label("Admin API key").fill(sandbox.OPENAI_ADMIN_KEY)
    page.get_by_text("Advanced settings").click()  # base URL sits in a closed <details>
    page.get_by_label("API base URL").fill(sandbox.openai_base_url)
    screenshot("connect-form")
    page.get_by_role("button", name="Verify and connect").click()

    # The detail page shows what verify found: the sandbox's organization and its projects.
    expect(page.get_by_role("heading", name=re.compile(r"^OpenAI"), level=1)).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Connected OpenAI")).to_be_visible()
    expect(page.get_by_text(sandbox.OPENAI_ORGANIZATION_ID).first).to_be_visible()
    expect(page.get_by_role("cell", name=CHATBOT.name)).to_be_visible()
    expect(page.get_by_text("No usage stored yet")).to_be_visible()
    screenshot("connected")
    integration = Integration.objects.get(workspace__slug="acme")
    assert integration.provider == "openai"
    assert sandbox.OPENAI_ADMIN_KEY not in page.content()  # the key never comes back
    return integration


def sync_now(page: Page, integration: Integration, screenshot: Screenshot) -> int:
    """Press Sync now; return the input_tokens total the sandbox holds for the synced window."""
    page.get_by_role("button", name="Sync now").click()
    expect(page.get_by_role("status").filter(has_text="Sync finished")).to_be_visible()

    run = integration.sync_runs.get()
    assert run.status == SyncRun.Status.SUCCESS, run.error
    input_tokens = _true_input_tokens(run.window_start, run.window_end)
    assert input_tokens > 0
    stored = UsageRecord.objects.filter(integration=integration).count()
    assert run.rows_written == stored > 0
    expect(page.get_by_role("status").filter(has_text=f"Sync finished: {stored:,} rows written")).to_be_visible()

    # The Sync finished answer refreshes the Usage section: totals and rows appear.
    usage = page.locator("#usage")
    expect(usage.get_by_text(f"{stored:,} rows")).to_be_visible()
    expect(_total(usage, "input_tokens")).to_have_text(_tokens(input_tokens))
    expect(usage.locator('.total[data-metric="input_tokens"]')).to_have_attribute(
        "title", f"{input_tokens:,} tokens"
    )  # exact on hover
    chatbot_rows = usage.get_by_role("row").filter(has_text=CHATBOT.name)
    expect(chatbot_rows.first).to_be_visible()
    screenshot("synced")
    return input_tokens


def delete_default_rule(page: Page, integration: Integration, screenshot: Screenshot) -> None:
    """Connecting created a catch-all rule to the "OpenAI" application: delete it."""
    stored = UsageRecord.objects.filter(integration=integration).count()
    assert UsageRecord.objects.filter(integration=integration, application__name="OpenAI").count() == stored

    _settings_tab(page, "Attribution rules").click()
    expect(page.get_by_role("heading", name="Attribution rules", level=1)).to_be_visible()
    default = page.locator("#rules").get_by_role("row").filter(has_text="Default")
    expect(default).to_have_count(1)
    expect(default.get_by_role("link", name="OpenAI", exact=True)).to_be_visible()  # the application
    expect(default.get_by_role("cell", name=f"{stored:,}", exact=True)).to_be_visible()
    screenshot("rules-default")
    default.get_by_role("link", name="Delete").click()

    expect(page.get_by_role("heading", name="Delete this rule?")).to_be_visible()
    expect(page.get_by_text(f"{stored:,} usage rows are attributed to it")).to_be_visible()
    page.get_by_role("button", name="Delete rule").click()

    # Re-attribution ran (eagerly) before the redirect answered: the panel says it is done.
    expect(page.get_by_role("status").filter(has_text="Rule deleted")).to_be_visible()
    expect(page.get_by_text(f"Attribution is up to date: {stored:,} rows re-checked")).to_be_visible()
    expect(page.get_by_role("heading", name="No rules yet")).to_be_visible()
    screenshot("rules-after-delete")
    assert not UsageRecord.objects.filter(integration=integration, application__isnull=False).exists()


def create_rule_from_unattributed_group(page: Page, integration: Integration, screenshot: Screenshot) -> None:
    """Send the chatbot project's usage, whatever the model, to a new application."""
    _settings_tab(page, "Unattributed usage").click()
    expect(page.get_by_role("heading", name="Unattributed usage", level=1)).to_be_visible()
    groups = page.locator("#groups").get_by_role("row")
    chatbot_groups = groups.filter(has_text=CHATBOT.id)
    other_groups = groups.filter(has_text=re.compile("|".join(p.id for p in sandbox_openai.PROJECTS[1:])))
    # OpenAI reports tokens per (project, model) and cost per (project, model, line item), so
    # the chatbot project is several groups: one per model and operation.
    chatbot = UsageRecord.objects.filter(integration=integration, project=CHATBOT.id)
    expect(chatbot_groups).to_have_count(chatbot.values_list("model", "operation").distinct().count())
    others = other_groups.count()
    assert others > 0
    screenshot("unattributed")

    # The group of one model's tokens: its rule would match that model only…
    model = chatbot.filter(metric="input_tokens").order_by("model").values_list("model", flat=True).first()
    model_cell = page.get_by_role("cell", name=model, exact=True)
    tokens_group = chatbot_groups.filter(has_text="Input tokens").filter(has=model_cell)
    tokens_group.get_by_role("link", name="Create rule from this").click()
    expect(page.get_by_role("heading", name="New attribution rule")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Prefilled from unattributed usage")).to_be_visible()
    expect(page.get_by_label("Project", exact=True)).to_have_value(CHATBOT.id)
    expect(page.get_by_label("Model", exact=True)).to_have_value(model)
    page.get_by_label("Model", exact=True).fill("")  # …so clear it: the whole project, every model
    page.get_by_label("New application name").fill(APPLICATION)
    screenshot("rule-form")
    page.get_by_role("button", name="Save rule").click()

    # The chatbot groups are attributed now; the other projects' groups stay unattributed.
    expect(page.get_by_role("heading", name="Unattributed usage", level=1)).to_be_visible()
    expect(chatbot_groups).to_have_count(0)
    expect(other_groups).to_have_count(others)
    screenshot("unattributed-after-rule")
    assert chatbot.count() == chatbot.filter(application__name=APPLICATION, rule__isnull=False).count()
    attributed = UsageRecord.objects.filter(integration=integration, application__isnull=False)
    assert not attributed.exclude(project=CHATBOT.id).exists()


def explore_and_download_csv(
    page: Page, integration: Integration, all_input_tokens: int, screenshot: Screenshot
) -> None:
    """The explorer, filtered to the new application, and its rows as the docs/architecture.md CSV."""
    run = integration.sync_runs.get()
    input_tokens = _true_input_tokens(run.window_start, run.window_end, project=CHATBOT.id)
    assert 0 < input_tokens < all_input_tokens
    rows = UsageRecord.objects.filter(integration=integration, project=CHATBOT.id).count()

    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Usage").click()
    expect(page.get_by_role("heading", name="Usage", level=1)).to_be_visible()
    # The explorer opens on this month; the sync's 30-day window reaches back before it: all days.
    page.goto(page.url.split("?")[0] + "?date_from=")
    results = page.locator("#results")
    # The explorer opens on this month; the sync read further back: look at all of it.
    results.get_by_role("navigation", name="Dates").get_by_role("link", name="All time").click()
    expect(results.get_by_test_id("window")).to_contain_text("All time")
    expect(_total(results, "input_tokens")).to_have_attribute(
        "title", f"{all_input_tokens:,} tokens"
    )  # everything, unfiltered
    filters = page.get_by_role("group", name="Filters")
    filters.get_by_role("combobox", name=re.compile(r"^Application")).select_option(label=APPLICATION)
    # The filter applies on change (htmx swaps the results): only the chatbot project's rows.
    expect(results.get_by_text(f"{rows:,} rows, newest first")).to_be_visible()
    expect(_total(results, "input_tokens")).to_have_attribute("title", f"{input_tokens:,} tokens")
    expect(results.get_by_role("cell", name=APPLICATION).first).to_be_visible()
    screenshot("explorer")

    with page.expect_download() as download_info:
        results.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename.startswith("doow-usage-acme-") and download.suggested_filename.endswith(".csv")
    path = Path(download.path())
    header, records = _read_csv(path)
    assert header == CSV_COLUMNS
    assert len(records) == rows
    assert {r["application"] for r in records} == {APPLICATION}
    assert {r["project"] for r in records} == {CHATBOT.id}
    assert {r["provider"] for r in records} == {"openai"}
    assert {r["integration"] for r in records} == {str(integration.pk)}
    assert {r["integration_name"] for r in records} == {integration.name}
    assert all(ISO_HOUR.fullmatch(r["bucket_start"]) and ISO_HOUR.fullmatch(r["bucket_end"]) for r in records)
    assert _sum(records, "input_tokens") == input_tokens


# ---------------------------------------------------------------- helpers
def _settings_tab(page: Page, name: str) -> Any:
    return page.get_by_role("navigation", name="Company Settings sections").get_by_role("link", name=name)


def _total(scope: Any, metric: str) -> Any:
    """The value of one metric in a totals panel (a card per metric: its label, its value)."""
    return scope.locator(f'.total[data-metric="{metric}"]').locator(".total-value")


def _tokens(total: int) -> str:
    """A token total as the pages write it (doow/templatetags/formats.py: 71,377,745 → 71.4M tokens)."""
    return f"{compact(total)} tokens"


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    text = path.read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def _true_input_tokens(start: Any, end: Any, project: str | None = None) -> int:
    """The sandbox's input tokens in [start, end): completions, embeddings and moderations."""
    total = sum(r.input_tokens for r in sandbox_openai.truth_usage(start, end) if project in (None, r.project_id))
    for kind in ("embeddings", "moderations"):
        total += sum(
            r.values[0] for r in sandbox_openai.truth_kind(kind, start, end) if project in (None, r.project_id)
        )
    return total


def _sum(rows: list[dict[str, str]], metric: str) -> Decimal:
    return sum((Decimal(r["quantity"]) for r in rows if r["metric"] == metric), Decimal(0))
