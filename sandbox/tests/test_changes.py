"""Restatements (sandbox.core.Changes): a provider's answer changed from then on, in the truth
functions and in what the handlers serve alike, and undone by the sandbox's reset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sandbox import azure_openai, google_vertex, openai
from sandbox.core import Changes

DAY = timedelta(days=1)


def test_edits_rename_or_withdraw_rows_in_order():
    changes: Changes[int] = Changes()
    assert changes.apply([1, 2, 3]) == [1, 2, 3]
    changes.add(lambda n: None if n == 2 else n)
    changes.add(lambda n: n * 10)
    assert changes.apply([1, 2, 3]) == [10, 30]
    changes.clear()
    assert changes.apply((1, 2)) == [1, 2]


def test_reset_undoes_every_provider_change(sandbox):
    start = datetime(2026, 11, 2, tzinfo=UTC)
    before = openai.truth_costs(start, start + DAY)
    model = before[0].line_item.partition(",")[0]
    openai.withdraw_model(model)
    google_vertex.rename_sku(google_vertex.SKUS[0].id, new_id="ZZZZ-0000-0000")
    azure_openai.remove_account(azure_openai.ACCOUNTS[0].name)
    assert all(not r.line_item.startswith(model + ",") for r in openai.truth_costs(start, start + DAY))
    assert "ZZZZ-0000-0000" in {r.sku.id for r in google_vertex.truth_rows(start, start + DAY)}
    assert azure_openai.ACCOUNTS[0] not in azure_openai.accounts()
    sandbox.reset()
    assert openai.truth_costs(start, start + DAY) == before
    assert "ZZZZ-0000-0000" not in {r.sku.id for r in google_vertex.truth_rows(start, start + DAY)}
    assert azure_openai.accounts() == azure_openai.ACCOUNTS


def test_a_change_is_served_over_http_too(sandbox):
    import json
    import urllib.request

    start = datetime(2026, 11, 2, tzinfo=UTC)
    item = openai.truth_costs(start, start + DAY)[0].line_item
    openai.relabel_line_item(item, item + " (priority)")
    query = f"start_time={int(start.timestamp())}&end_time={int((start + DAY).timestamp())}&group_by=line_item"
    request = urllib.request.Request(
        f"{sandbox.openai_base_url}/organization/costs?{query}", headers={"Authorization": f"Bearer {openai.ADMIN_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # the local sandbox
        items = {r["line_item"] for b in json.loads(response.read())["data"] for r in b["results"]}
    assert item + " (priority)" in items and item not in items


def test_changes_are_steered_over_http_like_faults(sandbox):
    import pytest

    start = datetime(2026, 11, 2, tzinfo=UTC)
    sandbox.change("openai", "withdraw_model", model="o3-mini-2025-01-31")
    assert all(r.model != "o3-mini-2025-01-31" for r in openai.truth_usage(start, start + DAY))
    for bad in (
        {"provider": "openai", "change": "delete_everything"},
        {"provider": "nope", "change": "withdraw_model"},
    ):
        with pytest.raises(RuntimeError, match="400"):
            sandbox.change(bad["provider"], bad["change"], model="x")
    with pytest.raises(RuntimeError, match="400"):
        sandbox.change("openai", "withdraw_model", colour="blue")  # not an argument of it
    sandbox.reset()
    assert any(r.model == "o3-mini-2025-01-31" for r in openai.truth_usage(start, start + DAY))
