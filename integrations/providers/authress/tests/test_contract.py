"""Authress against the shared provider contract (integrations/providers/testing.py).

Authress has no usage API, so the contract's error behaviour (401, 429 beyond the retry
budget, 5xx, an unreadable body, no secret in any error) is exercised through `verify`, the
one call the connector makes; the fetch-shaped checks are replaced by what holds instead:
fetch refuses without a request, and the recorded fixture is a portal CSV that the importer
turns into samples.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from integrations.http import HttpClient
from integrations.providers.authress import provider
from integrations.providers.authress.tests.support import EXPECTED_PORTAL_CALLS, raw
from integrations.providers.base import Answered, ConfigurationError, ProviderError, UsageSample, Window
from integrations.providers.testing import ProviderContractTests
from sandbox import authress as fake
from usage.importer import parse_usage_csv


class TestAuthressContract(ProviderContractTests):
    provider = provider
    fault_prefix = "/authress/v1/"
    paginated_prefix = "/authress/v1/accounts/"

    def credential(self, sandbox: Any) -> dict[str, str]:
        return {"access_key": fake.ACCESS_KEY}

    def settings(self, sandbox: Any) -> dict[str, str]:
        return {"base_url": f"{sandbox.url}/authress"}

    def small_window(self) -> Window:
        return Window(datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))

    def fetch_all(self, sandbox: Any, window: Window, *, http: HttpClient | None = None) -> list[UsageSample]:
        # The only provider call there is; the mixin's error tests go through here.
        http = http or self.make_http(sandbox)
        self.provider.verify(self.credential(sandbox), self.settings(sandbox), http=http)
        return []

    def recorded_fixture_cases(self) -> Iterable[tuple[str, list[UsageSample], list[UsageSample]]]:
        parsed = parse_usage_csv(raw("portal_calls.csv"), now=datetime(2025, 4, 1, tzinfo=UTC))
        yield "portal_calls.csv", parsed.samples, EXPECTED_PORTAL_CALLS

    # ------------------------------------------------------------ what replaces the fetch checks
    def test_contract_pagination_is_exhausted(self, sandbox: Any) -> None:
        # Nothing is paginated: verify is a single request.
        self.fetch_all(sandbox, self.small_window())
        assert [r["status"] for r in sandbox.requests(self.paginated_prefix)] == [200]

    def test_contract_samples_are_in_window_and_time_order(self, sandbox: Any) -> None:
        with pytest.raises(ConfigurationError):
            list(
                self.provider.fetch(
                    self.credential(sandbox), self.settings(sandbox), self.small_window(), http=self.make_http(sandbox)
                )
            )
        assert sandbox.requests() == []

    def test_contract_an_empty_window_makes_no_request(self, sandbox: Any) -> None:
        # Any window, empty or not, is refused before a call: Authress reports no usage.
        moment = self.small_window().end
        with pytest.raises(ConfigurationError):
            list(
                self.provider.fetch(
                    self.credential(sandbox),
                    self.settings(sandbox),
                    Window(moment, moment),
                    http=self.make_http(sandbox),
                )
            )
        assert sandbox.requests() == []

    def test_contract_truth_holds_every_emitted_metric(self) -> None:
        # Nothing is fetched, so there is no truth to hold: the usage arrives by import.
        assert self.provider.fetches_usage is False
        assert "no API that reports call volume" in self.provider.usage_source_note

    def test_contract_answers_cover_what_was_returned(self, sandbox: Any) -> None:
        # No stream, no answer: imported rows are all it holds, and nothing removes them.
        answered: list[Answered] = []
        with pytest.raises(ConfigurationError):
            list(self.provider.fetch(self.credential(sandbox), self.settings(sandbox), self.small_window(),
                                     http=self.make_http(sandbox), answered=answered))  # fmt: skip
        assert self.provider.streams == () and answered == []

    def test_contract_a_read_cut_short_raises_instead_of_answering(self, sandbox: Any) -> None:
        # Nothing is read in pages: verify's one request failing raises.
        sandbox.fault(self.paginated_prefix, 503, times=50)
        with pytest.raises(ProviderError):
            self.fetch_all(sandbox, self.small_window())
