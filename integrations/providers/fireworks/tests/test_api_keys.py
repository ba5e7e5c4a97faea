"""Issue 13: Fireworks' serverless billing is read per API key (the documented `api_key_id` /
`api_key_name` groupBy dimensions, values taken from the row's `group` map)."""

from __future__ import annotations

from collections import Counter

from integrations.providers.testing import assert_totals_equal, totals_by
from sandbox import fireworks as fw


def test_serverless_tokens_are_kept_per_api_key(provider, credential, provider_settings, http, sandbox, three_days):
    samples = list(provider.fetch(credential, provider_settings, three_days, http=http))
    serverless = [s for s in samples if s.stream == "billing_serverless"]
    truth: Counter = Counter()
    for row in fw.truth_serverless(three_days.start, three_days.end):
        for key_id, _name, prompt, completion in fw.serverless_by_key(row):
            truth[("input_tokens", row.model, key_id)] += prompt
            truth[("output_tokens", row.model, key_id)] += completion
    assert_totals_equal(totals_by(serverless, "model", "api_key"), truth, "serverless tokens per model and key")
    assert {s.api_key for s in serverless} == {key for key, _name in fw.SERVERLESS_KEYS}
    # Dedicated deployments have no API-key dimension: their rows keep api_key empty.
    assert {s.api_key for s in samples if s.stream == "billing_dedicated"} <= {""}
