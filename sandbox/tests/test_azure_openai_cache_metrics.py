"""The fake Azure Monitor's prompt-cache metrics of "Models – Usage": served for Anthropic model
deployments only, apart from InputTokens, and equal to the truth."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import requests

from sandbox import azure_openai as az

SWEDEN = next(a for a in az.ACCOUNTS if a.name == "doow-sbx-sweden")
METRICS = f"/azure_openai/arm{SWEDEN.id}/providers/Microsoft.Insights/metrics"
FIELDS = {"InputTokens": "prompt_tokens", "cacheReadInputTokens": "cache_read",
          "ephemeral5mInputTokens": "cache_write_5m", "ephemeral1hInputTokens": "cache_write_1h"}  # fmt: skip


def test_cache_metrics_are_served_for_anthropic_deployments_only(sandbox) -> None:
    day = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    query = {
        "api-version": "2024-02-01",
        "metricnames": ",".join(FIELDS),
        "interval": "PT1H",
        "aggregation": "Total",
        "timespan": f"{day:%Y-%m-%dT%H:%M:%SZ}/{day + timedelta(hours=48):%Y-%m-%dT%H:%M:%SZ}",
        "$filter": "ModelDeploymentName eq '*'",
        "top": 50,
    }
    token = az.issue_token(az.CLIENT_ID)
    response = requests.get(
        sandbox.url + METRICS, params=query, headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert response.status_code == 200
    served: Counter = Counter()
    for value in response.json()["value"]:
        name = value["name"]["value"]
        deployments = {s["metadatavalues"][0]["value"] for s in value["timeseries"]}
        if name != "InputTokens":
            assert deployments == {"claude-sonnet"}, (name, deployments)
        for s in value["timeseries"]:
            for p in s["data"]:
                served[(name, s["metadatavalues"][0]["value"])] += p.get("total", 0)
    truth: Counter = Counter()
    for r in az.truth_usage(day, day + timedelta(hours=48)):
        if r.account == SWEDEN.name:
            for metric, field in FIELDS.items():
                truth[(metric, r.deployment)] += getattr(r, field)
    assert +served == +truth
    assert truth[("cacheReadInputTokens", "claude-sonnet")] and truth[("ephemeral5mInputTokens", "claude-sonnet")]
