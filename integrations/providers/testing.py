"""Tests every provider must pass, shared the django-allauth way.

A provider's test module subclasses `ProviderContractTests` in a class named `Test…` and fills
in the hooks (a working credential, settings pointing at the sandbox, the sandbox path to
inject faults on, a window that needs more than one page, the true totals for a window, and
its recorded fixtures parsed into samples). The mixin then checks the behaviour the sync
engine relies on: metadata, 401 → CredentialError, 429 beyond the retry budget →
RateLimited, 5xx → ProviderUnavailable, an unreadable body → ProviderResponseError,
pagination followed to the end, samples in time order (over both windows), an empty window
making no call, fixtures → expected samples, no secret in any error, and the
streams and answers the engine removes vanished rows by (every sample names a declared
stream; what it answered covers what it returned and stays inside the window; a read cut
short after its first page raises instead of answering).

A provider's tests name its sandbox once, as a `SandboxHooks` subclass in their support module
(credential, settings, windows): the contract class, `ProviderFailureTests` in test_errors.py
(429 retried / beyond the budget / a long wait / no wait, 5xx retried and storms, a later page
failing, timeouts, malformed JSON, with the provider's own words and request-id form) and
`CursorPagingTests` (a missing or repeated cursor) all use it, and integrations/providers/
conftest.py builds the `provider`, `credential`, `http` and window fixtures from it. The helpers
below (fetch_list, fetch_raises, key_fetchers, stored_totals, days_ago, fixture_loader) are what
the per-provider tests share beyond the mixins.

`provider_metadata_problems` is also used by integrations/tests/test_registry.py on every
registry entry. This module is not collected itself (its class name does not start with Test)
and uses explicit assertion messages, since pytest only rewrites asserts in test modules.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from integrations.http import HttpClient
from integrations.providers.base import (
    DIMENSIONS,
    Answered,
    ConfigurationError,
    CredentialError,
    NetworkError,
    Provider,
    ProviderError,
    ProviderResponseError,
    ProviderUnavailable,
    RateLimited,
    UsageSample,
    Window,
    align_down,
    align_up,
)

VALID_BUCKETS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(hours=1), timedelta(days=1))
COST_TOLERANCE = Decimal("0.005")  # "to the cent"


def provider_metadata_problems(slug: str, provider: Provider, *, base_dir: Path | None = None) -> list[str]:
    """What is wrong with one registry entry's metadata (empty list: it honours the contract)."""
    if base_dir is None:
        from django.conf import settings

        base_dir = Path(settings.BASE_DIR)
    problems = []
    if getattr(provider, "slug", None) != slug:
        problems.append(f"registry key {slug!r} != provider.slug {getattr(provider, 'slug', None)!r}")
    if not slug or not slug.replace("_", "").isalnum() or slug != slug.lower():
        problems.append(f"slug {slug!r} must be lower-case letters, digits and underscores")
    if not getattr(provider, "name", ""):
        problems.append("name is empty")
    if getattr(provider, "category", None) not in ("ai", "cloud"):
        problems.append(f"category {getattr(provider, 'category', None)!r} is not 'ai' or 'cloud'")
    if not provider.vendor:
        problems.append("vendor is empty")
    if not provider.credential_help:
        problems.append("credential_help is empty (say where to create the credential)")
    if not provider.credential_fields:
        problems.append("no credential_fields")
    elif not any(f.secret for f in provider.credential_fields):
        problems.append("no credential field is marked secret")
    names = [f.name for f in (*provider.credential_fields, *provider.setting_fields)]
    if any(not n or not n.strip() or n != n.strip() for n in names):
        problems.append(f"a credential or setting field has an empty or padded name: {names!r}")
    if len(names) != len(set(names)):
        problems.append(f"duplicate field names: {names!r}")
    if any(not f.label for f in (*provider.credential_fields, *provider.setting_fields)):
        problems.append("a field has no label")
    setting_names = {f.name for f in provider.setting_fields}
    if not setting_names & {"base_url", "endpoint_url"}:
        problems.append("no base_url (or endpoint_url) setting: the sandbox and proxies cannot stand in")
    for name in provider.url_settings:
        if name not in setting_names:
            problems.append(f"url_settings names {name!r}, which is not a setting field")
    if not provider.docs_path:
        problems.append("docs_path is empty")
    elif not (base_dir / provider.docs_path).is_file():
        problems.append(f"docs page {provider.docs_path} does not exist")
    if provider.reporting_delay < timedelta(0):
        problems.append("reporting_delay is negative")
    if provider.restatement_window <= timedelta(0):
        problems.append("restatement_window must be positive (buckets are revised after they close)")
    if provider.bucket not in VALID_BUCKETS:
        problems.append(f"bucket {provider.bucket} is not one of {VALID_BUCKETS}")
    if provider.chunk < provider.bucket:
        problems.append("chunk is smaller than bucket")
    names = [stream.name for stream in provider.streams]
    if provider.fetches_usage and not names:
        problems.append("no streams: fetch must mark its samples with a declared Stream")
    if len(names) != len(set(names)):
        problems.append(f"duplicate stream names: {names!r}")
    for name in names:
        if not name or len(name) > 32 or not name.replace("_", "").isalnum() or name != name.lower():
            problems.append(f"stream name {name!r} must be 1-32 lower-case letters, digits and underscores")
    return problems


def assert_answers_cover(
    provider: Provider, window: Window, samples: list[UsageSample], answered: list[Answered]
) -> None:
    """What fetch declared answered is consistent with what it returned: every sample names a
    declared stream; every answer names a stream that answers and stays inside the window
    (whole days read around an unaligned start allowed); every sample of an answering stream
    lies inside one of its answers (the sandbox answers completely, so nothing may be left
    undeclared: an undeclared part keeps its vanished rows forever)."""
    streams = {stream.name: stream for stream in provider.streams}
    strays = sorted({s.stream for s in samples} - set(streams))
    assert not strays, f"samples name undeclared streams {strays} (declared: {sorted(streams)})"
    assert answered, "fetch answered nothing over a window the sandbox serves completely"
    floor = align_down(window.start, timedelta(days=1))
    for answer in answered:
        assert answer.stream in streams and streams[answer.stream].answers, f"{answer.stream!r} may not be answered"
        assert floor <= answer.window.start < answer.window.end <= window.end, (
            f"{answer.stream} answered {answer.window} outside the window {window}"
        )
    uncovered = [s for s in samples if streams[s.stream].answers and not any(a.covers(s) for a in answered)]
    assert not uncovered, f"{len(uncovered)} samples lie outside every answer, e.g. {uncovered[0]}"


def assert_no_secret(error: BaseException, secrets: Iterable[str]) -> None:
    """No part of a raised error may show a secret."""
    texts = [str(error), repr(error), *(str(getattr(error, a, "")) for a in ("message", "hint", "request_id"))]
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"a secret leaked into {type(error).__name__}: {text[:80]!r}…"


def totals_by(samples: Iterable[UsageSample], *dims: str) -> Counter[tuple[Any, ...]]:
    """Sum of quantities per (metric, *dims); dims may be DIMENSIONS or 'bucket_start'."""
    totals: Counter[tuple[Any, ...]] = Counter()
    for s in samples:
        totals[(s.metric, *(getattr(s, d) for d in dims))] += s.quantity  # type: ignore[assignment]  # Counters of Decimals
    return totals


# Totals are Counters of Decimals (typeshed types a Counter's counts as int).
Totals = Mapping[Any, Decimal | int]


def assert_totals_equal(actual: Totals, expected: Totals, what: str = "totals") -> None:
    """Token counts must match exactly; costs (metric 'cost' first in the key) to the cent."""
    keys = set(actual) | set(expected)
    wrong = []
    for key in sorted(keys, key=repr):
        got, want = Decimal(actual.get(key, 0)), Decimal(expected.get(key, 0))
        tolerance = COST_TOLERANCE if key and key[0] == "cost" else Decimal(0)
        if abs(got - want) > tolerance:
            wrong.append(f"{key}: got {got}, expected {want}")
    assert not wrong, f"{what} differ:\n" + "\n".join(wrong[:20])


def sample_key(s: UsageSample) -> tuple[Any, ...]:
    """What the usage store keys a sample by: its bucket, metric and every dimension."""
    return (s.bucket_start, s.bucket_end, s.metric, *(getattr(s, d) for d in DIMENSIONS))


def stored_totals(*reads: Iterable[UsageSample]) -> Counter[tuple[Any, ...]]:
    """Totals per (metric,) of several fetches written one after the other the way the usage
    store writes them (same key: replace, never add); a bucket read twice must read the same."""
    store: dict[tuple[Any, ...], Decimal] = {}
    for read in reads:
        for s in read:
            key = sample_key(s)
            assert key not in store or store[key] == s.quantity, f"the same bucket read twice disagrees: {key}"
            store[key] = s.quantity
    totals: Counter[tuple[Any, ...]] = Counter()
    for key, quantity in store.items():
        totals[(key[2],)] += quantity  # type: ignore[assignment]  # Counters of Decimals
    return totals


def read_twice(first: Iterable[UsageSample], second: Iterable[UsageSample]) -> set[datetime]:
    """The bucket starts two reads both returned."""
    return {s.bucket_start for s in first} & {s.bucket_start for s in second}


def assert_adjacent_windows_count_once(
    fetch: Callable[[Window], list[UsageSample]],
    busy: Callable[[datetime, datetime], Totals],
    expected: Callable[[datetime, datetime], Totals],
) -> None:
    """Two adjacent unaligned windows, meeting 45 minutes into an hour with traffic (by `busy`, a
    truth) so both read that hour, store with the usage store's semantics (same key → replace,
    never add) exactly `expected(start, end)`: `start` is the first window's unaligned start."""
    start, end = days_ago(3) + timedelta(minutes=20), days_ago(1)
    middle = first_busy_hour(busy, days_ago(2) + timedelta(hours=13), end) + timedelta(minutes=45)
    first, second = fetch(Window(start, middle)), fetch(Window(middle, end))
    assert align_down(middle) in read_twice(first, second), "the hour around `middle` is read by both windows"
    assert_totals_equal(stored_totals(first, second), expected(start, end), "stored totals")


def refused_offline(provider: Provider, field: str, value: str, words: str) -> ConfigurationError:
    """check_credential's ConfigurationError for `value` in `field`: its message says `words`,
    and neither it nor its hint holds the value (a "Bearer " prefix aside)."""
    with pytest.raises(ConfigurationError) as info:
        provider.check_credential({field: value})
    assert words in info.value.message, f"{words!r} not in {info.value.message!r}"
    if value.strip():
        assert_no_secret(info.value, [value.removeprefix("Bearer ")])
    return info.value


def days_ago(days: int) -> datetime:
    """UTC midnight `days` days before today: windows ending there are fully elapsed, so a
    sandbox's data for them no longer changes while a test runs."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


def fixture_loader(folder: Path) -> Callable[[str], Any]:
    """`load(name)`: the recorded JSON response `name` in a provider's fixtures folder."""

    def load(name: str) -> Any:
        return json.loads((folder / name).read_text())

    return load


def fetch_list(provider: Provider, credential: Mapping[str, str], settings: Mapping[str, str], window: Window,
               http: HttpClient, **kwargs: Any) -> list[UsageSample]:  # fmt: skip
    """Everything one fetch yields."""
    return list(provider.fetch(dict(credential), dict(settings), window, http=http, **kwargs))


def key_fetchers(field: str) -> tuple[Callable[..., list[UsageSample]], Callable[..., Any]]:
    """For a provider whose credential is the one secret `field`: `run(provider, secret, settings,
    window, http)`, everything a fetch yields, and `raises(error_type, provider, secret, settings,
    window, http)`, the error it raises, checked to show no secret."""

    def run(
        provider: Provider, secret: str, settings: Mapping[str, str], window: Window, http: HttpClient
    ) -> list[UsageSample]:
        return fetch_list(provider, {field: secret}, settings, window, http)

    def raises(error_type: type[ProviderError], provider: Provider, secret: str, settings: Mapping[str, str],
               window: Window, http: HttpClient) -> Any:  # fmt: skip
        return fetch_raises(error_type, provider, {field: secret}, settings, window, http)

    return run, raises


def fetch_raises(error_type: type[ProviderError], provider: Provider, credential: Mapping[str, str],
                 settings: Mapping[str, str], window: Window, http: HttpClient, **kwargs: Any) -> Any:  # fmt: skip
    """The error of type `error_type` one fetch raises, checked to show none of the credential's secrets."""
    with pytest.raises(error_type) as info:
        fetch_list(provider, credential, settings, window, http, **kwargs)
    assert_no_secret(info.value, provider.secret_values(credential))
    return info.value


def first_busy_hour(truth: Callable[[datetime, datetime], Totals], start: datetime, end: datetime) -> datetime:
    """The first whole hour in [start, end) in which the sandbox's truth records usage. The
    sandboxes leave some hours idle (a digest of the hour decides which), so a test that needs
    traffic in a particular hour asks for one instead of assuming the calendar's luck."""
    hour = start
    while hour < end:
        if any(truth(hour, hour + timedelta(hours=1)).values()):
            return hour
        hour += timedelta(hours=1)
    raise AssertionError(f"the sandbox has no usage between {start} and {end}")


class SandboxHooks:
    """How a provider's tests reach its sandbox: one subclass per provider (in its tests'
    support module) serves both the contract tests and the failure tests below."""

    provider: ClassVar[Provider]
    fault_prefix: ClassVar[str]  # sandbox path prefix covering every call the provider makes

    # ------------------------------------------------------------ hooks
    def credential(self, sandbox: Any) -> dict[str, str]:
        raise NotImplementedError

    def settings(self, sandbox: Any) -> dict[str, str]:
        raise NotImplementedError

    def small_window(self) -> Window:
        """A short window in the past with data, for error tests: the day before yesterday."""
        return Window(days_ago(2), days_ago(1))

    def pagination_window(self) -> Window:
        """A window needing more than one page of `paginated_prefix`."""
        raise NotImplementedError

    # ------------------------------------------------------------ helpers
    def make_http(self, sandbox: Any, **kwargs: Any) -> HttpClient:
        # Retries sleep through this list, not the clock: tests stay fast and can assert waits.
        self.sleeps: list[float] = []
        kwargs.setdefault("sleep", self.sleeps.append)
        return HttpClient(secrets=self.secrets(sandbox), **kwargs)

    def secrets(self, sandbox: Any) -> list[str]:
        return self.provider.secret_values(self.credential(sandbox))

    def fetch_all(self, sandbox: Any, window: Window, *, http: HttpClient | None = None) -> list[UsageSample]:
        http = http or self.make_http(sandbox)
        return list(self.provider.fetch(self.credential(sandbox), self.settings(sandbox), window, http=http))

    def fetch_answered(self, sandbox: Any, window: Window) -> tuple[list[UsageSample], list[Answered]]:
        answered: list[Answered] = []
        fetched = self.provider.fetch(
            self.credential(sandbox), self.settings(sandbox), window, http=self.make_http(sandbox), answered=answered
        )
        return list(fetched), answered

    def expect_error(
        self, sandbox: Any, error_type: type[ProviderError], *, window: Window | None = None, **http_kwargs: Any
    ) -> ProviderError:
        with pytest.raises(error_type) as info:
            self.fetch_all(sandbox, window or self.small_window(), http=self.make_http(sandbox, **http_kwargs))
        assert_no_secret(info.value, self.secrets(sandbox))
        return info.value


class ProviderContractTests(SandboxHooks):
    """Mixin of contract tests; a subclass named Test… fills in the hooks below, or names the
    support functions they usually are: `truth = support.truth`, `cases = support.cases`."""

    paginated_prefix: ClassVar[str]  # sandbox path whose pages pagination_window spans
    emitted_metrics: ClassVar[Iterable[str]]  # every metric fetch emits (the truth must hold each)
    # truth(start, end): the sandbox's true totals per (metric,) over [start, end); cases(): the
    # recorded fixture cases. Plain functions, called through the class (never bound to self).
    truth: ClassVar[Callable[[datetime, datetime], Mapping[tuple[Any, ...], Decimal]]]
    cases: ClassVar[Callable[[], Iterable[tuple[str, list[UsageSample], list[UsageSample]]]]]

    def expected_totals(self, window: Window) -> Mapping[tuple[Any, ...], Decimal]:
        """The sandbox's true totals per (metric,) over `window`, as totals_by(samples) keys them."""
        return type(self).truth(window.start, window.end)

    def recorded_fixture_cases(self) -> Iterable[tuple[str, list[UsageSample], list[UsageSample]]]:
        """(fixture name, samples parsed from it by the connector's pure functions, expected)."""
        return type(self).cases()

    @property
    def slug(self) -> str:
        return self.provider.slug

    # ------------------------------------------------------------ the contract
    def test_contract_metadata(self) -> None:
        from integrations.providers.registry import PROVIDERS

        assert PROVIDERS.get(self.slug) is self.provider, f"{self.slug!r} is not registered as this provider"
        problems = provider_metadata_problems(self.slug, self.provider)
        assert not problems, "metadata contract broken:\n" + "\n".join(problems)

    def test_contract_truth_holds_every_emitted_metric(self) -> None:
        """The totals the other checks compare are not vacuous: over small_window the sandbox's
        truth holds every metric fetch emits, each above zero."""
        totals = self.expected_totals(self.small_window())
        assert set(totals) == {(m,) for m in self.emitted_metrics}, f"the truth holds {sorted(totals)}"
        assert all(v > 0 for v in totals.values()), f"the truth has an empty metric: {totals}"

    def test_contract_401_raises_credential_error(self, sandbox: Any) -> None:
        sandbox.fault(self.fault_prefix, 401, times=20)
        error = self.expect_error(sandbox, CredentialError)
        assert error.http_status == 401, f"http_status {error.http_status}"
        assert error.hint, "a credential error needs a hint saying what to do"

    def test_contract_429_beyond_budget_raises_rate_limited(self, sandbox: Any) -> None:
        sandbox.fault(self.fault_prefix, 429, times=50, headers={"Retry-After": "1"})
        error = self.expect_error(sandbox, RateLimited)
        assert isinstance(error, RateLimited) and error.retry_after == 1.0, (
            f"retry_after {getattr(error, 'retry_after', None)}"
        )
        assert self.sleeps and all(s == 1.0 for s in self.sleeps), f"Retry-After not honoured: slept {self.sleeps}"

    def test_contract_5xx_storm_raises_provider_unavailable(self, sandbox: Any) -> None:
        sandbox.fault(self.fault_prefix, 503, times=50)
        self.expect_error(sandbox, ProviderUnavailable)

    def test_contract_unreadable_body_raises_response_error(self, sandbox: Any) -> None:
        sandbox.fault(self.fault_prefix, 200, times=50, body="<html>upstream proxy error</html>")
        self.expect_error(sandbox, ProviderResponseError)

    def test_contract_pagination_is_exhausted(self, sandbox: Any) -> None:
        window = self.pagination_window()
        samples = self.fetch_all(sandbox, window)
        pages = sandbox.requests(self.paginated_prefix)
        assert len(pages) > 1, f"the pagination window was read in {len(pages)} request(s); choose a longer one"
        assert all(p["status"] == 200 for p in pages), [p["status"] for p in pages]
        assert_totals_equal(totals_by(samples), self.expected_totals(window), "totals over the pagination window")

    def test_contract_samples_are_in_window_and_time_order(self, sandbox: Any) -> None:
        for window in (self.small_window(), self.pagination_window()):
            samples = self.fetch_all(sandbox, window)
            assert samples, f"the window {window} should hold usage"
            starts = [s.bucket_start for s in samples]
            assert starts == sorted(starts), "fetch must yield samples in time order"
            assert all(s.bucket_start < window.end and s.bucket_end > window.start for s in samples)
            keys = [sample_key(s) for s in samples]
            assert len(keys) == len(set(keys)), "one fetch yielded the same sample key twice"

    def test_contract_an_empty_window_makes_no_request(self, sandbox: Any) -> None:
        moment = self.small_window().end
        assert self.fetch_all(sandbox, Window(moment, moment)) == []
        assert sandbox.requests() == [], "an empty window needs no call"

    def test_contract_answers_cover_what_was_returned(self, sandbox: Any) -> None:
        for window in (self.small_window(), self.pagination_window()):
            samples, answered = self.fetch_answered(sandbox, window)
            assert samples, f"the window {window} should hold usage"
            assert_answers_cover(self.provider, window, samples, answered)

    def test_contract_a_read_cut_short_raises_instead_of_answering(self, sandbox: Any) -> None:
        # The first page is served, every later request fails: the engine must never see this
        # fetch end normally, or it would take the pages it got for the whole answer.
        sandbox.fault(self.paginated_prefix, 503, times=1000, after=1)
        with pytest.raises(ProviderError):
            self.fetch_answered(sandbox, self.pagination_window())
        assert sandbox.requests(self.paginated_prefix)[0]["status"] == 200, "the first page should have been served"

    def test_contract_recorded_fixtures_parse_to_expected_samples(self) -> None:
        cases = list(self.recorded_fixture_cases())
        assert cases, "add recorded fixtures beside the connector's tests"
        for name, actual, expected in cases:
            assert expected, f"{name}: expect at least one sample"
            assert Counter(actual) == Counter(expected), (
                f"{name}: parsed samples differ\nmissing: {list((Counter(expected) - Counter(actual)).elements())}\n"
                f"unexpected: {list((Counter(actual) - Counter(expected)).elements())}"
            )

    def test_contract_verify_returns_identity(self, sandbox: Any) -> None:
        identity = self.provider.verify(self.credential(sandbox), self.settings(sandbox), http=self.make_http(sandbox))
        assert identity.summary, "verify must summarise what the credential can see"
        for secret in self.secrets(sandbox):
            assert secret not in repr(identity.as_dict()), "verify leaked a secret"


class ProviderFailureTests(SandboxHooks):
    """How the HTTP failures every provider meets are reported: a mixin for a provider's
    test_errors.py (a subclass named Test… with the provider's SandboxHooks). Retries are
    recorded in `self.sleeps` with a back-off of one second, so waits can be asserted.

    Each case may also check the provider's own words: `words` maps a case ("rejected",
    "rate_limited", "no_wait", "unavailable", "malformed") to text the error's message must
    contain, and `hints` the same for its hint; `request_id` is a pattern the provider's request
    id must match where it sends one. `rejected` is a credential the sandbox answers with 401."""

    rejected: ClassVar[Mapping[str, str]]  # a revoked credential: the sandbox answers 401

    retried_path: ClassVar[str]  # a path every fetch of small_window reads
    later_page_path: ClassVar[str]  # a path pagination_window reads more than once
    later_page_after: ClassVar[int] = 1  # requests of later_page_path served before it fails
    malformed_body: ClassVar[str]  # JSON cut short, in the shape the provider answers with
    storm_statuses: ClassVar[tuple[int, ...]] = (500,)
    no_wait_429_body: ClassVar[Any] = None  # a 429 body that names no wait (None: the sandbox's)
    words: ClassVar[Mapping[str, str]] = {}
    hints: ClassVar[Mapping[str, str]] = {}  # the same for the error's hint
    request_id: ClassVar[str | None] = None

    def http(self, sandbox: Any, **kwargs: Any) -> HttpClient:
        kwargs.setdefault("backoff", 1.0)
        return self.make_http(sandbox, **kwargs)

    def fails(self, sandbox: Any, error_type: type[ProviderError], case: str = "", **kwargs: Any) -> Any:
        kwargs.setdefault("backoff", 1.0)
        error = self.expect_error(sandbox, error_type, **kwargs)
        return self.in_words(case, error)

    def in_words(self, case: str, error: Any) -> Any:
        """`error`, checked to carry the provider's words and hint for `case`."""
        if case in self.words:
            assert self.words[case] in error.message, f"{case}: {error.message!r} lacks {self.words[case]!r}"
        if case in self.hints:
            assert self.hints[case] in error.hint, f"{case}: hint {error.hint!r} lacks {self.hints[case]!r}"
        return error

    def assert_request_id(self, error: ProviderError) -> None:
        if self.request_id is not None:
            assert re.search(self.request_id, error.request_id or ""), f"request id {error.request_id!r}"

    # ------------------------------------------------------------ a rejected credential
    def test_http_401_is_a_rejected_credential_and_not_retried(self, sandbox: Any) -> None:
        http = HttpClient(secrets=self.provider.secret_values(self.rejected), backoff=1.0, sleep=[].append)
        error = fetch_raises(CredentialError, self.provider, self.rejected, self.settings(sandbox),
                             self.small_window(), http)  # fmt: skip
        assert error.http_status == 401, error.http_status
        self.in_words("rejected", error)
        self.assert_request_id(error)
        assert len(sandbox.requests()) == 1, "a rejected credential is not retried"

    # ------------------------------------------------------------ rate limits
    def test_http_429_with_retry_after_is_retried_then_succeeds(self, sandbox: Any) -> None:
        expected = self.fetch_all(sandbox, self.small_window(), http=self.http(sandbox))
        sandbox.reset()
        sandbox.fault(self.retried_path, 429, times=2, headers={"Retry-After": "1"})
        assert self.fetch_all(sandbox, self.small_window(), http=self.http(sandbox)) == expected
        assert self.sleeps == [1.0, 1.0], self.sleeps

    def test_http_429_storm_beyond_the_budget_is_rate_limited(self, sandbox: Any) -> None:
        sandbox.fault(self.fault_prefix, 429, times=50, headers={"Retry-After": "1"})
        error = self.fails(sandbox, RateLimited, "rate_limited")
        assert error.retry_after == 1.0 and error.http_status == 429, (error.retry_after, error.http_status)
        attempts = HttpClient().max_attempts
        assert len(sandbox.requests()) == attempts, f"{len(sandbox.requests())} requests"
        assert self.sleeps == [1.0] * (attempts - 1), self.sleeps

    def test_http_429_asking_for_a_long_wait_is_not_slept_through(self, sandbox: Any) -> None:
        sandbox.fault(self.fault_prefix, 429, headers={"Retry-After": "600"})
        error = self.fails(sandbox, RateLimited)
        assert error.retry_after == 600.0, error.retry_after
        assert self.sleeps == [] and len(sandbox.requests()) == 1, (self.sleeps, sandbox.requests())

    def test_http_429_without_a_wait_is_left_to_the_engine(self, sandbox: Any) -> None:
        sandbox.fault(self.fault_prefix, 429, body=self.no_wait_429_body)
        error = self.fails(sandbox, RateLimited, "no_wait")
        assert error.retry_after is None, error.retry_after
        assert self.sleeps == [] and len(sandbox.requests()) == 1, (self.sleeps, sandbox.requests())

    # ------------------------------------------------------------ outages
    def test_http_500_is_retried_with_backoff_then_succeeds(self, sandbox: Any) -> None:
        sandbox.fault(self.retried_path, 500, times=2)
        assert self.fetch_all(sandbox, self.small_window(), http=self.http(sandbox))
        assert self.sleeps == [1.0, 2.0], self.sleeps

    def test_http_5xx_storm_is_provider_unavailable(self, sandbox: Any) -> None:
        for status in self.storm_statuses:
            sandbox.reset()
            sandbox.fault(self.fault_prefix, status, times=50)
            error = self.fails(sandbox, ProviderUnavailable, "unavailable")
            assert error.http_status == status, (status, error.http_status)
            self.assert_request_id(error)

    def test_http_failure_on_a_later_page_fails_the_fetch(self, sandbox: Any) -> None:
        sandbox.fault(self.later_page_path, 502, after=self.later_page_after, times=50)
        self.fails(sandbox, ProviderUnavailable, window=self.pagination_window())
        assert sandbox.requests(self.later_page_path)[0]["status"] == 200, "the first page should have been served"

    def test_http_timeout_is_a_network_error(self, sandbox: Any) -> None:
        sandbox.fault(self.fault_prefix, 200, delay=0.5, times=2)
        error = self.fails(sandbox, NetworkError, timeout=0.15, max_attempts=2)
        assert "Timed out" in error.message, error.message

    def test_http_one_timeout_is_retried(self, sandbox: Any) -> None:
        sandbox.fault(self.retried_path, 200, delay=0.5)
        assert self.fetch_all(sandbox, self.small_window(), http=self.http(sandbox, timeout=0.15))
        assert self.sleeps == [1.0], self.sleeps

    # ------------------------------------------------------------ unreadable answers
    def test_http_malformed_json_is_a_response_error(self, sandbox: Any) -> None:
        sandbox.fault(self.retried_path, 200, body=self.malformed_body)
        error = self.fails(sandbox, ProviderResponseError, "malformed")
        assert "not JSON" in error.message, error.message
        self.assert_request_id(error)


class CursorPagingTests(SandboxHooks):
    """A provider that pages with a cursor must not trust one that is missing or comes back:
    `has_more` without a cursor, or the same cursor twice, is an unreadable answer, not an
    endless loop or a silently short read."""

    cursor_path: ClassVar[str]

    def page(self, *, has_more: bool, cursor: str | None) -> Any:
        """An empty page in the provider's shape saying whether more follow, and after what."""
        raise NotImplementedError

    def test_paging_more_without_a_cursor_is_a_response_error(self, sandbox: Any) -> None:
        sandbox.fault(self.cursor_path, 200, body=self.page(has_more=True, cursor=None))
        self.expect_error(sandbox, ProviderResponseError)

    def test_paging_a_cursor_that_repeats_is_a_response_error(self, sandbox: Any) -> None:
        sandbox.fault(self.cursor_path, 200, times=5, body=self.page(has_more=True, cursor="page_again"))
        self.expect_error(sandbox, ProviderResponseError)
        assert len(sandbox.requests(self.cursor_path)) == 2, f"{len(sandbox.requests(self.cursor_path))} requests"


class BucketReportTests:
    """What reading the bucketed admin reports through toolkit.BucketReports does for a provider
    (OpenAI, Anthropic): next_page followed to the end of the usage and the cost report, and an
    unaligned window read as the whole buckets it touches, asked for as such. A subclass named
    Test… in the provider's test_connector.py names the report paths, the time parameters of a
    request and the functions below (plain functions, called through the class); its conftest
    gives the `provider` fixtures."""

    usage_path: ClassVar[str]  # hourly, 168 buckets a page
    costs_path: ClassVar[str]  # daily
    span_names: ClassVar[tuple[str, str]]  # the request's start and end parameters
    span_value: ClassVar[Callable[[datetime], str]]  # a bound as the sandbox records it
    usage_truth: ClassVar[Callable[..., Totals]]  # (start, end)
    cost_truth: ClassVar[Callable[..., Totals]]  # (start, end, key of a cost row)
    split: ClassVar[Callable[[list[UsageSample]], tuple[list[UsageSample], list[UsageSample]]]]  # (usage, costs)

    def span_query(self, start: datetime, end: datetime) -> dict[str, list[str]]:
        value = type(self).span_value
        return {self.span_names[0]: [value(start)], self.span_names[1]: [value(end)]}

    def read(self, provider: Provider, credential: Any, settings: Any, window: Window, http: HttpClient) -> Any:
        return type(self).split(list(provider.fetch(credential, settings, window, http=http)))

    def test_usage_pagination_follows_next_page_to_the_end(
        self, provider, credential, provider_settings, http, sandbox
    ):
        window = Window(days_ago(10), days_ago(1))  # 216 hourly buckets: two pages of 168
        usage, _ = self.read(provider, credential, provider_settings, window, http)
        pages = sandbox.requests(self.usage_path)
        assert len(pages) == 2, f"{len(pages)} usage pages read, not 2"
        assert "page" not in pages[0]["query"], "the first page is asked for without a cursor"
        assert pages[1]["query"]["page"][0].startswith("page_"), "the second page is asked for by its cursor"
        assert_totals_equal(totals_by(usage), type(self).usage_truth(window.start, window.end), "usage over two pages")

    def test_costs_pagination_follows_next_page_to_the_end(
        self, provider, credential, provider_settings, http, sandbox
    ):
        provider = type(provider)()
        provider.costs_page_size = 2  # a page of the documented size would need a month-long window
        window = Window(days_ago(8), days_ago(1))
        _, costs = self.read(provider, credential, provider_settings, window, http)
        assert len(sandbox.requests(self.costs_path)) == 4, "7 days, 2 per page: 4 pages"
        by_day = type(self).cost_truth(window.start, window.end, lambda r: (r.day,))
        assert_totals_equal(totals_by(costs, "bucket_start"), by_day, "cost per day over four pages")

    def test_unaligned_window_is_read_as_whole_buckets(self, provider, credential, provider_settings, http, sandbox):
        hour, day = timedelta(hours=1), timedelta(days=1)
        # Starts 37 minutes into an hour with traffic, so that hour's bucket must come back whole.
        first_hour = first_busy_hour(type(self).usage_truth, days_ago(3) + timedelta(hours=10), days_ago(2))
        window = Window(first_hour + timedelta(minutes=37, seconds=5), days_ago(1) + timedelta(hours=5, minutes=20))
        usage, costs = self.read(provider, credential, provider_settings, window, http)

        assert all(s.bucket_start == align_down(s.bucket_start, hour) for s in usage), "usage keyed on whole hours"
        assert all(s.bucket_start == align_down(s.bucket_start, day) for s in costs), "costs keyed on whole days"
        assert min(s.bucket_start for s in usage) == align_down(window.start, hour), "the first hour is read"
        assert max(s.bucket_start for s in usage) < window.end, "no hour after the window is read"
        hours = (align_down(window.start, hour), align_up(window.end, hour))
        days = (align_down(window.start, day), align_up(window.end, day))
        for path, (start, end) in ((self.usage_path, hours), (self.costs_path, days)):
            (request,) = sandbox.requests(path)
            asked = {name: request["query"].get(name) for name in self.span_query(start, end)}
            assert asked == self.span_query(start, end), f"{path} asked for {asked}, not whole buckets"
        assert_totals_equal(totals_by(usage), type(self).usage_truth(*hours), "usage of the whole hours touched")
        assert_totals_equal(totals_by(costs), type(self).cost_truth(*days), "cost of the whole days touched")
