"""The provider contract.

A provider is one package under integrations/providers/<slug>/ exposing one `Provider`
subclass instance, registered in integrations/providers/registry.py. Connectors are plain
Python: they import nothing from Django models, talk HTTP only through the seam they are
handed (integrations.http.HttpClient), and never log or raise a secret.

Streams and answers (why a re-read never leaves a ghost). The store upserts on the natural
key, so a key that a re-read no longer returns (a SKU renamed, a credit withdrawn, a model
with no more usage) would stay beside its replacement and be counted twice. So every sample
names the `Stream` that produced it (one kind of answer: "OpenAI costs", "Bedrock CloudWatch
metrics"), and `fetch` declares, through the `answered` list the engine hands it, each part
it read COMPLETELY: `Answered(stream, window, scope)`. Within the chunk's transaction the
engine then removes the rows that a sync wrote for exactly that stream, whose bucket starts in
that window and whose dimensions match that scope, and that this answer did not return
(usage.store.usage_store_chunk). Declare nothing you did not read to the end: a page cut
short raises; a model a listing stopped listing, a day outside an API's horizon, an account
no longer discovered or a best-effort read that failed are simply not declared, and their
rows stay. Imported rows are never removed this way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar

from integrations.http import HttpClient
from integrations.providers import facts

# Defined below the HTTP seam, which raises them.
from integrations.providers.errors import (  # noqa: F401 - re-exported: connectors import them from here
    ConfigurationError,
    CredentialError,
    NetworkError,
    PermissionDenied,
    ProviderError,
    ProviderResponseError,
    ProviderUnavailable,
    RateLimited,
    ScopeError,
)

# The dimensions have one definition, usage/dimensions.py (plain Python: no models loaded).
from usage.dimensions import DIMENSIONS

# The fixed metric vocabulary (docs/architecture.md, Normalized usage), with each metric's unit ("cost" carries a currency).
METRICS: dict[str, str] = {
    "input_tokens": "tokens",
    "cached_input_tokens": "tokens",
    "cache_write_tokens": "tokens",
    "output_tokens": "tokens",
    "requests": "requests",
    "throttled_requests": "requests",  # refused for a rate limit (HTTP 429); not in `requests`
    "failed_requests": "requests",  # failed with another error (4xx / 5xx); not in `requests`
    "compute_seconds": "seconds",
    "provisioned_hours": "hours",  # PTU-hours of provisioned capacity, billed whatever the use
    "training_tokens": "tokens",  # tokens a fine-tuning job trained on (epochs included)
    "api_calls": "calls",
    # Added by issue 13 (docs/dimensions.md has the vocabulary with the provider fields).
    "images": "images",  # images generated or edited (OpenAI images usage)
    "characters": "characters",  # characters of text turned into speech (OpenAI audio speeches)
    "audio_seconds": "seconds",  # seconds of audio transcribed (OpenAI audio transcriptions)
    "sessions": "sessions",  # code interpreter / code execution sessions
    "storage_byte_days": "byte-days",  # bytes stored, read per UTC day (a day's row = its bytes)
    "billed_quantity": "",  # what a cost line billed, in the provider's unit (the unit says which)
    "cost": "",
    "byok_cost": "",  # spend on the customer's own provider keys, routed here (not billed here)
    "estimated_cost": "",  # computed from prices (usage/pricing), never reported by a connector
}
# Metrics in money (their unit is a currency code); only `cost` and `estimated_cost` are spend.
MONEY_METRICS: frozenset[str] = frozenset({"cost", "byok_cost", "estimated_cost"})
# What an Answered scope may restrict: the dimensions, and the metric.
SCOPE_FIELDS: tuple[str, ...] = (*DIMENSIONS, "metric")


# ---------------------------------------------------------------- time
def align_down(moment: datetime, width: timedelta = timedelta(hours=1)) -> datetime:
    """The start of the `width` bucket (counted from the Unix epoch, UTC) that holds `moment`."""
    seconds = int(width.total_seconds())
    ts = int(moment.timestamp())
    return datetime.fromtimestamp(ts - ts % seconds, UTC)


def align_up(moment: datetime, width: timedelta = timedelta(hours=1)) -> datetime:
    """`moment` if it starts a bucket, else the start of the next one."""
    down = align_down(moment, width)
    return down if down == moment else down + width


# ---------------------------------------------------------------- data
@dataclass(frozen=True)
class FormField:
    """A credential or setting field the add/edit form renders."""

    name: str
    label: str
    help_text: str = ""
    secret: bool = False
    required: bool = True
    placeholder: str = ""
    default: str = ""
    # One of several ways to give the same thing (an AWS role, or an access key): not required
    # by itself, but not "optional" either, so the form doesn't label it so.
    alternative: bool = False


@dataclass(frozen=True)
class Window:
    """Half-open interval [start, end) of UTC instants."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("Window bounds must be timezone-aware")
        if self.end < self.start:
            raise ValueError("Window end is before its start")


@dataclass(frozen=True)
class UsageSample:
    """One normalized quantity: one metric, one bucket, one combination of dimensions."""

    bucket_start: datetime
    bucket_end: datetime
    metric: str
    quantity: Decimal
    unit: str = ""
    account: str = ""
    project: str = ""
    region: str = ""
    model: str = ""
    deployment: str = ""
    endpoint: str = ""
    resource: str = ""
    operation: str = ""
    api_key: str = ""
    # How the provider priced or served it (usage/dimensions.py; docs/dimensions.md).
    service_tier: str = ""
    batch: str = ""
    context_window: str = ""
    inference_geo: str = ""
    speed: str = ""
    # "reported" by the provider, "derived" (estimates computed from rates) or "imported" (CSV).
    provenance: str = "reported"
    # The Stream of the connector that produced it ("" for imported rows): the rows a later
    # Answered for this stream may remove. Not part of the natural key.
    stream: str = ""
    # The provider's own labels of the usage (e.g. Google Cloud's resource labels), sorted
    # (key, value) pairs: stored with the row for attribution rules, NOT part of the natural key.
    # Typed Any so that `UsageSample(..., **dimensions)` with a dict of strings still type-checks;
    # __post_init__ makes any mapping or iterable of pairs a sorted tuple of string pairs.
    labels: Any = ()

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"Unknown metric {self.metric!r}")
        if not isinstance(self.quantity, Decimal):
            object.__setattr__(self, "quantity", Decimal(str(self.quantity)))
        if not self.unit:
            object.__setattr__(self, "unit", METRICS[self.metric])
        if not self.unit:
            raise ValueError(f"A {self.metric} sample needs its unit (a currency code for money)")
        if self.labels:
            if isinstance(self.labels, str):
                raise ValueError("labels are (key, value) pairs or a mapping, not a string")
            pairs = self.labels.items() if isinstance(self.labels, Mapping) else self.labels
            object.__setattr__(self, "labels", tuple(sorted((str(k), str(v)) for k, v in pairs)))
        elif self.labels != ():
            object.__setattr__(self, "labels", ())


# The key of a connector's `state` that lists the streams a fetch could not read because the
# credential may not (a scope or permission refused for that part only): {stream: message}.
# The rest of the fetch is stored as usual; the engine records one warning event when a stream
# joins the list (or its message changes), not one per sync.
SKIPPED_STATE = "skipped_streams"


def note_skipped(state: dict[str, Any], skipped: Mapping[str, str]) -> None:
    """Record in `state` which streams this fetch skipped (an empty mapping clears the note)."""
    if skipped:
        state[SKIPPED_STATE] = {name: message[:500] for name, message in sorted(skipped.items())}
    else:
        state.pop(SKIPPED_STATE, None)


def in_stream(samples: Iterable[UsageSample], stream: str) -> list[UsageSample]:
    """The samples, each marked as produced by `stream` (the pure mappers stay stream-free)."""
    return [replace(s, stream=stream) for s in samples]


@dataclass(frozen=True)
class Stream:
    """One kind of answer a connector reads (OpenAI's costs, Fireworks' serverless billing),
    named in every row it writes. `name` is stored (UsageRecord.stream): never rename one
    without a data migration. `answers` is False for a stream no window of which is ever read
    twice (e.g. estimates integrated between two scrapes): fetch never declares it answered,
    so nothing it wrote is ever removed."""

    name: str
    description: str
    answers: bool = True


@dataclass(frozen=True)
class Answered:
    """fetch read `stream` completely for the buckets starting in [window.start, window.end)
    whose dimensions (and metric) match `scope`: every such row the provider has now was in
    the answer. `scope` maps a dimension name or "metric" to the values read (e.g.
    {"project": {"proj_a", "proj_b"}} under a project filter, {"region": {"us-east-1"},
    "model": {...listed models}} for CloudWatch); a name absent from it means "all values".
    A sync's rows of this stream inside the window and scope that the answer did not return
    are removed by the engine: declare only what was read to the end."""

    stream: str
    window: Window
    scope: Mapping[str, Collection[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.stream:
            raise ValueError("Answered needs a stream name")
        scope: dict[str, frozenset[str]] = {}
        for name, values in dict(self.scope).items():
            if name not in SCOPE_FIELDS:
                raise ValueError(f"Unknown scope field {name!r}")
            if isinstance(values, str):  # {"project": "proj_a"} would mean its characters
                raise ValueError(f"Scope {name!r} takes a collection of values, not one string")
            scope[name] = frozenset(values)
        object.__setattr__(self, "scope", MappingProxyType(dict(sorted(scope.items()))))

    def __hash__(self) -> int:
        return hash((self.stream, self.window, tuple((k, tuple(sorted(v))) for k, v in self.scope.items())))

    def covers(self, sample: UsageSample) -> bool:
        """Whether `sample` lies in this answer (its stream, window and scope)."""
        return (
            sample.stream == self.stream
            and self.window.start <= sample.bucket_start < self.window.end
            and all(getattr(sample, name) in values for name, values in self.scope.items())
        )

    def within(self, bounds: Window) -> Answered | None:
        """This answer limited to `bounds` (None when nothing is left): the engine never lets
        an answer reach outside the chunk it stores."""
        start, end = max(self.window.start, bounds.start), min(self.window.end, bounds.end)
        if start >= end:
            return None
        return Answered(self.stream, Window(start, end), self.scope)


@dataclass
class Identity:
    """What a credential can see, shown to the admin after Test connection."""

    account_id: str
    account_name: str = ""
    summary: str = ""
    # Free-form, JSON-serialisable facts for the page, e.g. {"projects": [{"id":…,"name":…}]}.
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "account_name": self.account_name,
            "summary": self.summary,
            "details": self.details,
        }


@dataclass(frozen=True)
class SetupStep:
    """One thing the admin does on the provider's side (e.g. paste a policy), shown on the
    add and detail pages. `code` is a block to copy verbatim (JSON, a command), never a secret."""

    title: str
    text: str = ""
    code: str = ""


@dataclass(frozen=True)
class FetchJob:
    """The arguments of one `Provider.fetch` over a non-empty window, as its `read` gets them
    (their meaning is in fetch's docstring). `state` and `answered` are the caller's own
    objects: the connector updates and appends to them in place."""

    credential: Mapping[str, str]
    settings: Mapping[str, str]
    window: Window
    http: HttpClient
    state: dict[str, Any] | None = None
    answered: list[Answered] | None = None


# ---------------------------------------------------------------- provider
class Provider:
    """Base class of every connector; subclasses fill in the class attributes and two methods."""

    slug: ClassVar[str]
    name: ClassVar[str]
    category: ClassVar[str]  # "ai" or "cloud"
    vendor: ClassVar[str] = ""
    docs_path: ClassVar[str] = ""  # e.g. "docs/providers/openai.md"
    credential_help: ClassVar[str] = ""  # where to create the credential, shown on the add form
    credential_fields: ClassVar[tuple[FormField, ...]] = ()
    setting_fields: ClassVar[tuple[FormField, ...]] = ()
    reporting_delay: ClassVar[timedelta] = timedelta(0)
    restatement_window: ClassVar[timedelta] = timedelta(days=1)
    bucket: ClassVar[timedelta] = timedelta(hours=1)  # the smallest bucket this connector returns
    chunk: ClassVar[timedelta] = timedelta(days=1)  # the engine stores this much per transaction
    # The engine reads at most this much in one fetch (rounded up to whole chunks), then stores
    # it chunk by chunk: a default 30-day backfill is one fetch, so a connector pays only the
    # pages and windows its API needs. Lower it where one fetch's samples would not fit in a
    # worker's memory or an API refuses a longer window the connector cannot split itself.
    fetch_span: ClassVar[timedelta] = timedelta(days=31)
    url_settings: ClassVar[tuple[str, ...]] = ("base_url",)  # settings holding URLs to vet
    # False for a provider with no usage API (its usage arrives by import): never scheduled,
    # and the page says why in `usage_source_note`.
    fetches_usage: ClassVar[bool] = True
    usage_source_note: ClassVar[str] = ""
    # Every stream fetch marks its samples with (see the module docstring).
    streams: ClassVar[tuple[Stream, ...]] = ()
    # The version of this connector's row keys. Bump it in the release where the same usage
    # comes to be stored under other keys (a new dimension splits a row, a row moves to another
    # model or metric) or measured otherwise: each integration's next sync re-reads the history
    # it holds through the usual path, so every re-read window's old-key rows are replaced, never
    # added to (integrations/engine.py, _reread_plan; docs/dimensions.md).
    keys_version: ClassVar[int] = 1

    def check_credential(self, credential: Mapping[str, str]) -> None:
        """Offline checks (key prefixes, shapes) before any call. Raise ConfigurationError,
        ScopeError or PermissionDenied with a hint saying what key to create instead."""

    def prepare_credential(
        self, credential: Mapping[str, str], *, previous: Mapping[str, str] | None = None, seed: str = ""
    ) -> dict[str, str]:
        """Add the credential fields the APP generates (never typed by the admin, e.g. an AWS
        external id), before check_credential, verify and saving. `previous` is the stored
        credential when rotating (keep what the provider side already trusts); `seed` is a
        stable, unguessable per-workspace string, so a value generated from it is the same on
        every attempt (the admin sets it up at the provider between two tries). Default: as given."""
        return dict(credential)

    def setup_instructions(
        self, credential: Mapping[str, str] | None = None, settings: Mapping[str, str] | None = None
    ) -> list[SetupStep]:
        """Steps the admin performs at the provider, filled in from a prepared credential when
        given (generic without one: templates call this with no arguments). Default: none."""
        return []

    def verify(self, credential: Mapping[str, str], settings: Mapping[str, str], *, http: HttpClient) -> Identity:
        raise NotImplementedError

    def identity_facts(self, details: Mapping[str, Any]) -> list[tuple[str, str]]:
        """What Test connection learnt (`Identity.details`, as stored) as (label, text) pairs
        for people: override to name things in the provider's words. Projects are listed apart
        by the page."""
        return facts.generic(details)

    def fetch(
        self,
        credential: Mapping[str, str],
        settings: Mapping[str, str],
        window: Window,
        *,
        http: HttpClient,
        state: dict[str, Any] | None = None,
        answered: list[Answered] | None = None,
    ) -> Iterator[UsageSample]:
        """Yield samples for the buckets of [window.start, window.end), in time order, each
        marked with one of `streams`.

        `state` is this integration's JSON-serialisable memory between syncs (e.g. the previous
        scrape of a counter, to integrate rates). The connector may read and update it in place;
        the engine persists it in the same transaction as the chunk's samples, so a chunk that
        fails leaves the stored state as it was. Most connectors ignore it.

        `answered`, when given, collects an `Answered` for each stream, window and scope read
        completely (append it once the last page of that part is in). The engine acts on it
        only when the iteration ends without an error, within the chunk it stores; rows of the
        stream in that window and scope that were not yielded are then removed. A part not read
        to the end (a listing that no longer lists a model, a day outside the API's horizon, a
        best-effort read that failed) is not declared, and its stored rows stay.

        An empty window has no bucket: it yields nothing and makes no request. Any other window
        is the connector's `read`, with these arguments as one `FetchJob`; so is every window of
        a provider with no usage API (`fetches_usage` False), whose read says why it refuses.
        """
        if window.end <= window.start and self.fetches_usage:
            return
        yield from self.read(FetchJob(credential, settings, window, http, state, answered))

    def read(self, job: FetchJob) -> Iterator[UsageSample]:
        """What `fetch` does for a non-empty window: every connector that fetches usage implements it."""
        raise NotImplementedError

    # Helpers shared by connectors.
    @staticmethod
    def answer(answered: list[Answered] | None, stream: str, window: Window, **scope: Collection[str]) -> None:
        """Declare `stream` read completely for `window` and `scope` (see fetch)."""
        if answered is not None:
            answered.append(Answered(stream, window, scope))

    def setting(self, settings: Mapping[str, str], name: str) -> str:
        value = (settings.get(name) or "").strip()
        if value:
            return value
        for f in self.setting_fields:
            if f.name == name:
                return f.default
        return ""

    def base_url(self, settings: Mapping[str, str]) -> str:
        """The `base_url` setting (or its default), without a trailing slash."""
        return self.setting(settings, "base_url").rstrip("/")

    def http_client(self, credential: Mapping[str, str]) -> HttpClient:
        """The HTTP seam for calls made with `credential`, which it redacts from every error."""
        return HttpClient(secrets=self.secret_values(credential))

    def secret_values(self, credential: Mapping[str, str]) -> list[str]:
        return [
            str(credential.get(f.name) or "") for f in self.credential_fields if f.secret and credential.get(f.name)
        ]
