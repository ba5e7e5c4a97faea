"""The connector toolkit: the plumbing every connector shares, so that a provider package is
mostly its fields, its mapping and its sandbox.

- `Shape(source)`: the checks a schema.py runs on a decoded JSON answer. Each failure is a
  ProviderResponseError that names the provider and the location path of the bad value
  ("OpenAI returned an unexpected response: costs page.data[3].results is not a list."); the
  HTTP seam's `HttpClient.parse_json` then tags it with the response's status and request id.
- `paginate(...)`: one cursor loop with a page cap and a repeated-cursor guard; `id_page(...)`:
  a page of a listing paged by its last id (Anthropic's workspaces, OpenAI's projects).
- `bucket_page(...)`, `bucket_pages(...)` and `BucketReports`: the bucketed, cursor-paged reports
  of the admin usage APIs that follow OpenAI's shape (OpenAI, Anthropic), read into samples.
- `pasted_key(...)`: a pasted API key, stripped, refused when blank or in pieces.
- `base_url_field(default)`: the optional API base URL setting (a proxy, the sandbox), read
  back with `Provider.base_url(settings)`; `bearer_headers(...)`: the headers of a JSON API
  called with a bearer key.

Plain Python below the connectors and above the provider errors (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from integrations.providers.base import FormField, Provider, Window, align_down, align_up, in_stream
from integrations.providers.errors import ConfigurationError, ProviderResponseError

if TYPE_CHECKING:
    import requests

    from integrations.http import HttpClient
    from integrations.providers.base import Answered, UsageSample

P = TypeVar("P")
R = TypeVar("R")


def base_url_field(default: str, label: str = "API base URL") -> FormField:
    """The optional `base_url` setting of a connector that talks to one public API host: empty
    means `default`; a proxy or the sandbox goes here."""
    return FormField(
        "base_url",
        label,
        help_text=f"Leave empty for {default}. Change only for a proxy or the sandbox.",
        required=False,
        default=default,
    )


class Shape:
    """Shape checks for the answers of one provider (`source`, as it appears in the message).

    `what` is the location path of the value checked ("usage page.data[2]"); a check on a key of
    an object names `what.key`."""

    def __init__(self, source: str) -> None:
        self.source = source

    def bad(self, what: str) -> ProviderResponseError:
        return ProviderResponseError(f"{self.source} returned an unexpected response: {what}.")

    def obj(self, value: Any, what: str) -> dict[str, Any]:
        """`value`, a JSON object."""
        if not isinstance(value, dict):
            raise self.bad(f"{what} is not an object")
        return value

    def objects(self, value: Any, what: str) -> list[tuple[str, dict[str, Any]]]:
        """`value`, a JSON list of objects, as (location path, object) pairs."""
        return [(f"{what}[{i}]", self.obj(item, f"{what}[{i}]")) for i, item in enumerate(self.array(value, what))]

    def opt_obj(self, obj: dict[str, Any], key: str, what: str) -> dict[str, Any]:
        """`obj[key]`, a JSON object; {} when absent or null."""
        value = obj.get(key)
        return {} if value is None else self.obj(value, f"{what}.{key}")

    def array(self, value: Any, what: str) -> list[Any]:
        """`value`, a JSON list."""
        if not isinstance(value, list):
            raise self.bad(f"{what} is not a list")
        return value

    def integer(self, obj: dict[str, Any], key: str, what: str, *, non_negative: bool = False) -> int:
        """`obj[key]`, a JSON integer (never a boolean: true is not a count of 1)."""
        value = obj.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or (non_negative and value < 0):
            kind = "a non-negative integer" if non_negative else "an integer"
            raise self.bad(f"{what}.{key} is missing or not {kind}")
        return value

    def flag(self, obj: dict[str, Any], key: str, what: str, *, default: bool = False) -> bool:
        """`obj[key]`, a JSON boolean; `default` when absent."""
        value = obj.get(key, default)
        if not isinstance(value, bool):
            raise self.bad(f"{what}.{key} is not a boolean")
        return value

    def number(self, value: Any, what: str, *, non_negative: bool = False) -> Decimal:
        """`value`, a finite number: a JSON number or a numeric string (APIs send both), never a
        boolean."""
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.bad(f"{what} is not a number")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise self.bad(f"{what} is not a number") from None
        if not number.is_finite():
            raise self.bad(f"{what} is not a finite number")
        if non_negative and number < 0:
            raise self.bad(f"{what} is not a non-negative number")
        return number

    def opt_number(self, obj: dict[str, Any], key: str, what: str, *, non_negative: bool = False) -> Decimal | None:
        """`obj[key]` as `number`; None when absent or null."""
        value = obj.get(key)
        return None if value is None else self.number(value, f"{what}.{key}", non_negative=non_negative)

    def opt_str(self, obj: dict[str, Any], key: str, what: str) -> str | None:
        """`obj[key]`, a string or absent; None when absent, null or empty. Also a page cursor
        (next_page, NextToken, nextLink)."""
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise self.bad(f"{what}.{key} is not a string")
        return value or None

    def time(self, obj: dict[str, Any], key: str, what: str) -> datetime:
        """`obj[key]`, an RFC 3339 timestamp with its offset, as UTC."""
        value = obj.get(key)
        try:
            moment = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise self.bad(f"{what}.{key} is not an RFC 3339 timestamp")
        return moment.astimezone(UTC)

    def text(self, obj: dict[str, Any], key: str, what: str, *, required: bool = True, strip: bool = False) -> str:
        """`obj[key]`, a string: a required one must be non-blank; an optional one is "" when
        absent or null."""
        value = obj.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.bad(f"{what}.{key} is {'missing or ' if required else ''}not a string")
        return value.strip() if strip else value


def paginate(
    get: Callable[[Any], P],
    next_cursor: Callable[[P], Hashable | None],
    *,
    source: str,
    max_pages: int,
    repeated: str,
    request_id: Callable[[P], str] | None = None,
) -> Iterator[P]:
    """The pages of one listing, in order. `get(cursor)` reads a page (cursor None for the first),
    `next_cursor(page)` names the next one, or None when `page` is the last.

    A cursor that is empty or already followed raises ProviderResponseError(`repeated`) (tagged
    with `request_id(page)` when given): following it would loop. More than `max_pages` pages
    raise too: a cursor loop the provider never ends is a bug, not a long history. Either way
    the listing was not read to the end, so the caller must not declare it answered."""
    seen: set[Hashable] = set()
    cursor: Hashable | None = None
    for _ in range(max_pages):
        page = get(cursor)
        yield page
        cursor = next_cursor(page)
        if cursor is None:
            return
        if not cursor or cursor in seen:
            raise ProviderResponseError(repeated, request_id=request_id(page) if request_id else "")
        seen.add(cursor)
    raise ProviderResponseError(f"{source} kept paginating past {max_pages} pages.")


@dataclass(frozen=True)
class IdPage(Generic[R]):
    """One page of a listing paged by the last id: `{"data": [{"id", ...}, ...], "has_more",
    "last_id"}`."""

    items: tuple[R, ...]
    has_more: bool
    last_id: str | None

    def cursor(self) -> str | None:
        """For paginate(): None on the last page; "" (a loop) when has_more comes without a last_id."""
        return (self.last_id or "") if self.has_more else None


def id_page(shape: Shape, body: Any, what: str, parse_item: Callable[[dict[str, Any], str, str], R]) -> IdPage[R]:
    """Check one page: every item names a non-empty id; `parse_item(obj, where, id)` reads the rest."""
    body = shape.obj(body, what)
    items = []
    for where, obj in shape.objects(body.get("data"), f"{what}.data"):
        item_id = shape.opt_str(obj, "id", where)
        if not item_id:
            raise shape.bad(f"{where}.id is missing")
        items.append(parse_item(obj, where, item_id))
    return IdPage(tuple(items), shape.flag(body, "has_more", what), shape.opt_str(body, "last_id", what))


def pasted_key(credential: Mapping[str, str], field: str, *, missing: str, hint: str = "", what: str = "The API key"
               ) -> str:  # fmt: skip
    """`credential[field]`, stripped. A blank one raises ConfigurationError(`missing`, hint=`hint`);
    one with spaces or line breaks left inside (pasted in pieces) raises ConfigurationError too."""
    key = (credential.get(field) or "").strip()
    if not key:
        raise ConfigurationError(missing, hint=hint)
    if any(c.isspace() for c in key):
        raise ConfigurationError(f"{what} contains spaces or line breaks; paste it again.")
    return key


def bearer_headers(credential: Mapping[str, str], field: str, *, missing: str, hint: str = "") -> dict[str, str]:
    """The headers of a JSON API called with the bearer key `credential[field]`; a blank key
    raises ConfigurationError(`missing`, hint=`hint`) before any call."""
    key = (credential.get(field) or "").strip()
    if not key:
        raise ConfigurationError(missing, hint=hint)
    return {"Authorization": f"Bearer {key}", "Accept": "application/json"}


# ---------------------------------------------------------------- bucketed report pages
@dataclass(frozen=True)
class Bucket(Generic[R]):
    """One time bucket of a report and the results (rows) in it."""

    start: datetime
    end: datetime
    results: tuple[R, ...]


@dataclass(frozen=True)
class BucketPage(Generic[R]):
    """One page of a bucketed report: `{"data": [{<span>, "results": [...]}, ...], "has_more",
    "next_page"}` (OpenAI's and Anthropic's admin usage and cost reports)."""

    buckets: tuple[Bucket[R], ...]
    has_more: bool
    next_page: str | None

    def cursor(self) -> str | None:
        """For paginate(): None on the last page; "" (a loop) when has_more comes without a cursor."""
        return (self.next_page or "") if self.has_more else None


def bucket_page(
    shape: Shape,
    body: Any,
    what: str,
    span: Callable[[dict[str, Any], str], tuple[datetime, datetime]],
    parse_result: Callable[[dict[str, Any], str], R],
) -> BucketPage[R]:
    """Check one report page: `span(bucket, where)` reads a bucket's bounds, `parse_result(row,
    where)` one result."""
    body = shape.obj(body, what)
    has_more = shape.flag(body, "has_more", what)
    next_page = shape.opt_str(body, "next_page", what)
    buckets = []
    for where, bucket in shape.objects(body.get("data"), f"{what}.data"):
        start, end = span(bucket, where)
        results = shape.objects(bucket.get("results"), f"{where}.results")
        buckets.append(Bucket(start, end, tuple(parse_result(obj, at) for at, obj in results)))
    return BucketPage(tuple(buckets), has_more, next_page)


def bucket_pages(
    http: HttpClient,
    request: Callable[[str | None], requests.Response],
    parse: Callable[[Any], BucketPage[Any]],
    *,
    source: str,
    max_pages: int,
    request_id: Callable[[requests.Response], str],
) -> Iterator[tuple[requests.Response, BucketPage[Any]]]:
    """Every page of one report, each with its response: `request(cursor)` sends the request
    for a page (the `page` parameter set to the cursor when there is one)."""

    def get(cursor: str | None) -> tuple[requests.Response, BucketPage[Any]]:
        response = request(cursor)
        return response, http.parse_json(response, parse, request_id_of=request_id)

    return paginate(
        get, lambda page: page[1].cursor(), source=source, max_pages=max_pages,
        repeated=f"{source} said has_more but gave no new next_page cursor.", request_id=lambda page: request_id(page[0]),
    )  # fmt: skip


@dataclass(frozen=True)
class BucketReports:
    """How one provider's bucketed admin reports are requested: `span(start, end)` gives the
    request's time parameters, `classify` the provider's meaning of error statuses; the
    organization each answer came from is the response header `account_header`."""

    source: str  # the provider, as messages name it
    account_header: str
    request_id_header: str
    span: Callable[[datetime, datetime], dict[str, Any]]
    classify: Callable[..., Any]
    max_pages: int = 5_000  # a cursor loop the provider never ends is a bug, not a long history

    def get(self, http: HttpClient, url: str, headers: dict[str, str], params: dict[str, Any]) -> requests.Response:
        return http.request("GET", url, headers=headers, params=params, classify=self.classify)

    def request_id(self, response: requests.Response) -> str:
        return response.headers.get(self.request_id_header, "")[:200]

    def samples(
        self,
        http: HttpClient,
        url: str,
        headers: dict[str, str],
        window: Window,
        width: timedelta,
        params: dict[str, Any],
        parse: Callable[[Any], BucketPage[Any]],
        to_samples: Callable[..., list[UsageSample]],
        stream: str,
        answered: list[Answered] | None,
        **scope: list[str],
    ) -> Iterator[UsageSample]:
        """The samples of one report over `window`, every page of it, marked with `stream`;
        `to_samples(bucket, account=, width=)` maps a bucket. Once the last page is in, `stream`
        is answered for the buckets read, per organization the answer came from, and `scope`."""
        # Ask for whole buckets: an explicit aligned range keeps the request, the page cursors and
        # our bucket keys in step (an unaligned bucket key would be stored beside the aligned one).
        start, end = align_down(window.start, width), align_up(window.end, width)
        params = {**params, **self.span(start, end)}
        accounts: set[str] = set()

        def request(cursor: str | None) -> requests.Response:
            return self.get(http, url, headers, {**params, "page": cursor} if cursor else params)

        pages = bucket_pages(
            http, request, parse, source=self.source, max_pages=self.max_pages, request_id=self.request_id
        )
        for response, page in pages:
            account = response.headers.get(self.account_header, "")
            accounts.add(account)
            for bucket in page.buckets:
                if start <= align_down(bucket.start, width) < window.end:
                    yield from in_stream(to_samples(bucket, account=account, width=width), stream)
        # The last page is in: every bucket from `start` up to the window's end was read.
        Provider.answer(answered, stream, Window(start, window.end), account=accounts, **scope)
