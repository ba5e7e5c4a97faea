"""AWS Bedrock against the shared provider contract (integrations/providers/testing.py).

The mixin injects faults through the HTTP sandbox; boto3 does its own HTTP and moto is this
provider's fake, so each sandbox-driven check is restated here with the same intent: moto
for data and paging, Stubber for AWS's error codes (AWS has no 401 or 429: a rejected key is
403 InvalidClientTokenId, throttling is 400 Throttling).
"""

from __future__ import annotations

from typing import Any

import pytest

from integrations.providers.aws_bedrock import provider
from integrations.providers.aws_bedrock.tests import support
from integrations.providers.aws_bedrock.tests.fakes import (
    FakeEndpoint,
    StubbedAws,
    series,
)
from integrations.providers.base import (
    DIMENSIONS,
    Answered,
    CredentialError,
    ProviderResponseError,
    ProviderUnavailable,
    RateLimited,
    Window,
)
from integrations.providers.testing import (
    ProviderContractTests,
    assert_answers_cover,
    assert_no_secret,
    assert_totals_equal,
    totals_by,
)


class TestAwsBedrockContract(ProviderContractTests):
    provider = provider

    def credential(self, sandbox: Any = None) -> dict[str, str]:
        return {"role_arn": support.ROLE_ARN, "external_id": support.EXTERNAL_ID}

    def settings(self, sandbox: Any = None) -> dict[str, str]:
        return {"regions": ",".join(support.REGIONS)}

    def small_window(self) -> Window:
        start = support.days_ago(2)
        return Window(start, start + 6 * support.HOUR)

    truth = support.true_totals
    cases = support.cases
    emitted_metrics = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "requests")

    def keys(self) -> dict[str, str]:
        return {"access_key_id": support.KEY_ID, "secret_access_key": support.SECRET}

    def stubbed_error(self, stubbed: StubbedAws, http: Any, code: str, status: int, error_type: type) -> Any:
        stubbed.caller()
        stubbed.error("cloudwatch", "list_metrics", code, status)
        with pytest.raises(error_type) as info:
            list(
                type(provider)(session_factory=stubbed).fetch(
                    self.keys(), self.settings(), self.small_window(), http=http
                )
            )
        assert_no_secret(info.value, [support.SECRET])
        return info.value

    # ------------------------------------------------------------ the contract, restated
    def test_contract_401_raises_credential_error(self, stubbed, http) -> None:
        error = self.stubbed_error(stubbed, http, "InvalidClientTokenId", 403, CredentialError)
        assert error.http_status == 403 and error.hint

    def test_contract_429_beyond_budget_raises_rate_limited(self, stubbed, http) -> None:
        error = self.stubbed_error(stubbed, http, "Throttling", 400, RateLimited)
        assert error.retry_after is None  # AWS sends no Retry-After: the engine backs off

    def test_contract_5xx_storm_raises_provider_unavailable(self, stubbed, http) -> None:
        self.stubbed_error(stubbed, http, "ServiceUnavailable", 503, ProviderUnavailable)

    def test_contract_unreadable_body_raises_response_error(self, http, aws_env) -> None:
        with (
            FakeEndpoint(200, b"<html>upstream proxy error</html>", sts_ok=True) as fake,
            pytest.raises(ProviderResponseError),
        ):
            list(
                provider.fetch(
                    self.keys(), {"regions": "us-east-1", "endpoint_url": fake.url}, self.small_window(), http=http
                )
            )

    def test_contract_pagination_is_exhausted(self, stubbed, http) -> None:
        stubbed.caller()
        stubbed.models("m.a-v1", next_token="p2")
        stubbed.models("m.b-v1")
        t = self.small_window().start
        stubbed.data([series("m0_0", [(t, 1.0)], "PartialData")], "d2")
        stubbed.data([series("m1_0", [(t, 2.0)])])
        stubbed.mantle()  # bedrock-mantle: nothing listed
        samples = list(
            type(provider)(session_factory=stubbed).fetch(
                self.keys(), {"regions": "us-east-1"}, self.small_window(), http=http
            )
        )
        assert {(s.model, s.quantity) for s in samples} == {("m.a-v1", 1), ("m.b-v1", 2)}
        stubbed.cloudwatch.assert_no_pending_responses()

    def test_contract_samples_are_in_window_and_time_order(self, customer_cloudwatch, http) -> None:
        window = self.small_window()
        support.seed_cloudwatch(customer_cloudwatch, window.start - support.HOUR, window.end + support.HOUR)
        samples = list(provider.fetch(self.credential(), self.settings(), window, http=http))
        assert samples
        starts = [s.bucket_start for s in samples]
        assert starts == sorted(starts)
        assert all(window.start <= s.bucket_start < window.end for s in samples)
        keys = [(s.bucket_start, s.bucket_end, s.metric, *(getattr(s, d) for d in DIMENSIONS)) for s in samples]
        assert len(keys) == len(set(keys))
        assert_totals_equal(totals_by(samples), support.true_totals(window.start, window.end))

    def test_contract_verify_returns_identity(self, customer_cloudwatch, http) -> None:
        identity = provider.verify(self.credential(), self.settings(), http=http)
        assert identity.summary and identity.account_id == support.CUSTOMER_ACCOUNT
        assert support.SECRET not in repr(identity.as_dict())

    def test_contract_answers_cover_what_was_returned(self, customer_cloudwatch, http) -> None:
        window = self.small_window()
        support.seed_cloudwatch(customer_cloudwatch, window.start - support.HOUR, window.end + support.HOUR)
        answered: list[Answered] = []
        samples = list(provider.fetch(self.credential(), self.settings(), window, http=http, answered=answered))
        assert samples
        assert_answers_cover(provider, window, samples, answered)
        # Exactly the listed ModelIds: per region, plain ids by model, profile ids by deployment.
        listed = set()
        for answer in answered:
            (region,) = answer.scope["region"]
            raw_ids = answer.scope["model"] if "model" in answer.scope else answer.scope["deployment"]
            listed |= {(region, raw) for raw in raw_ids}
        assert listed == {(r, m) for r, models in support.MODELS.items() for m in models}

    def test_contract_a_read_cut_short_raises_instead_of_answering(self, stubbed, http) -> None:
        # ListMetrics' second page, then GetMetricData's second page, fail: neither is an answer.
        for fail_listing in (True, False):
            stubbed = StubbedAws()
            stubbed.caller()
            stubbed.models("m.a-v1", next_token="p2")
            if fail_listing:
                stubbed.error("cloudwatch", "list_metrics", "ServiceUnavailable", 503)
            else:
                stubbed.models("m.b-v1")
                stubbed.data([series("m0_0", [(self.small_window().start, 1.0)])], "d2")
                stubbed.error("cloudwatch", "get_metric_data", "ServiceUnavailable", 503)
            answered: list[Answered] = []
            with pytest.raises(ProviderUnavailable):
                list(type(provider)(session_factory=stubbed).fetch(
                    self.keys(), {"regions": "us-east-1"}, self.small_window(), http=http, answered=answered))  # fmt: skip
            stubbed.cloudwatch.assert_no_pending_responses()
