"""One way to write numbers, money, durations, metrics and times on every page.

    {% load formats %}
    {{ 939412345|compact }}                  939M
    {{ row.quantity|amount:row.unit }}       1.2M tokens · $1,234.56 · 4.6 h · 12,345 requests
    {{ 1234.5|money }}  {{ 99|money:"EUR" }}  $1,234.50 · 99.00 EUR
    {{ seconds|duration }}                   45 s · 12 min · 4.6 h · 3.2 days
    {{ row.quantity|quantity }}              1,234,567 · 0.000000123 (exact, for raw rows and hover titles)
    {{ share|percent }}                      42% · 160% · 7.5% · 0.4% · <0.1% · — (a share, 0–100+)
    {{ rate|percent:"exact" }}               12.25% (a configured rate, as entered)
    {{ change|change_percent }}              +12% · −8% · new · — (a {delta, percent} change)
    {{ interval|duration_words }}            15 minutes · 1 day (a configured span, in words)
    {{ "cached_input_tokens"|metric_label }} Cached input tokens
    {% local_time value workspace %}         6 Dec 2026, 13:00 CET (the workspace's zone, named)
    {{ value|instant }}                      the same, in the active zone (the workspace's on its pages)
    {% moment value %}                       4.6 h ago · in 12 min · just now, the instant on hover

page_helpers registers `instant` (as `utc`, its older name) and `moment` too: one implementation.

Amounts are never converted between currencies: a non-USD amount keeps its code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

CURRENCY_SYMBOLS = {"USD": "$"}
METRIC_LABELS = {
    "input_tokens": "Input tokens",
    "cached_input_tokens": "Cached input tokens",
    "cache_write_tokens": "Cache write tokens",
    "output_tokens": "Output tokens",
    "requests": "Requests",
    "compute_seconds": "Compute time",
    "training_tokens": "Training tokens",
    "api_calls": "API calls",
    "images": "Images",
    "characters": "Characters",
    "audio_seconds": "Audio seconds",
    "sessions": "Sessions",
    "storage_byte_days": "Storage (byte-days)",
    "billed_quantity": "Billed quantity",
    "byok_cost": "BYOK spend (billed elsewhere)",
    "cost": "Reported cost",
    "estimated_cost": "Estimated cost",
}
_STEPS = ((Decimal(10) ** 12, "T"), (Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "k"))


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return None
    return number if number.is_finite() else None


@register.filter
def compact(value: Any) -> str:
    """Counts people take in at a glance: 987 → 987, 12,345 → 12,345, 1,234,567 → 1.2M,
    939,412,345 → 939M (three significant digits past a million)."""
    number = _decimal(value)
    if number is None:
        return "" if value in (None, "") else str(value)
    size = abs(number)
    if size < 1_000_000:
        return f"{number:,.0f}" if size >= 100 or number == number.to_integral_value() else f"{number:,.2f}"
    for step, suffix in _STEPS:
        if size >= step:
            scaled = number / step
            digits = 0 if abs(scaled) >= 100 else 1
            text = f"{scaled:,.{digits}f}".removesuffix(".0")
            return f"{text}{suffix}"
    raise AssertionError("unreachable")


@register.filter
def money(value: Any, currency: str = "USD") -> str:
    """$1,234.56; another currency by its code (99.00 EUR); a credit as −$12.00."""
    number = _decimal(value)
    if number is None:
        return ""
    code = (currency or "USD").upper()
    sign = "−" if number < 0 else ""
    text = f"{abs(number):,.2f}"
    if abs(number) and abs(number) < Decimal("0.01"):
        text = f"{abs(number):,.4f}".rstrip("0")  # a fraction of a cent is not $0.00
    symbol = CURRENCY_SYMBOLS.get(code)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {code}"


@register.filter
def duration(seconds: Any) -> str:
    """Seconds (or a timedelta) as the unit that reads best: 0.4 s, 45 s, 12 min, 4.6 h, 3.2 days."""
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    number = _decimal(seconds)
    if number is None:
        return ""
    value = float(number)
    if abs(value) < 10:
        return f"{value:.1f} s"  # a sync of a few hundred milliseconds is not "0 s"
    # Each unit up to where its rounding would show the next one's first value: 59.7 s is
    # "1 min", not "60 s", and 59 min 50 s is "1.0 h", not "60 min".
    if abs(value) < 59.5:
        return f"{value:,.0f} s"
    if abs(value) < 3570:
        return f"{max(round(abs(value) / 60), 1) * (1 if value > 0 else -1):,} min"
    if abs(value) < 48 * 3600:
        return f"{value / 3600:,.1f} h"
    return f"{value / 86400:,.1f} days"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@register.filter
def duration_words(value: timedelta | None) -> str:
    """timedelta → "15 minutes", "1 day", "2 hours 30 minutes", "4.2 s"."""
    if value is None:
        return ""
    seconds = value.total_seconds()
    if seconds < 0.1:
        return "under 0.1 s"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds % 1 else _plural(int(seconds), "second")
    parts: list[str] = []
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    for amount, word in ((days, "day"), (hours, "hour"), (minutes, "minute")):
        if amount:
            parts.append(_plural(amount, word))
    if secs and not days and not hours:
        parts.append(_plural(secs, "second"))
    return " ".join(parts[:2])


@register.filter
def quantity(value: Any) -> str:
    """A decimal exactly as stored, grouped, without trailing zeros or exponent: 1,234,567,
    0.004821, 0.000000123, 1,234.567891 (never 1234567.000000000 nor 1.23E-7)."""
    if value is None or value == "":
        return ""
    try:
        # A float by its shortest repr: Decimal(0.1) would show the binary expansion.
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return str(value)
    if not number.is_finite():
        return str(value)
    if number == number.to_integral_value():
        return f"{int(number):,}"
    return f"{number.normalize():,f}"


def _percent_text(number: Decimal) -> str:
    """One rule for every percentage: whole at 10 and above, one decimal under 10 (a trailing
    ".0" dropped), "<0.1" for a share too small to show at one decimal, a real minus sign (−)."""
    size = abs(number)
    if size >= Decimal("9.95"):  # 9.96 rounds to 10.0, which reads "10%", not "10.0%"
        text = f"{size.quantize(Decimal(1), ROUND_HALF_UP):,}"
    elif size and size < Decimal("0.05"):
        text = "<0.1"
    else:
        text = f"{size.quantize(Decimal('0.1'), ROUND_HALF_UP)}".removesuffix(".0")
    return f"{'−' if number < 0 else ''}{text}%"


@register.filter
def percent(value: Any, exact: str = "") -> str:
    """A share as a percentage: 42%, 160%, 7.5%, 0.4%, <0.1%; "—" when there is none (no
    commitment to measure against). With "exact", a configured rate as entered: 12.25%."""
    number = _decimal(value)
    if number is None:
        return "—"
    if exact:
        sign = "−" if number < 0 else ""
        return f"{sign}{format(abs(number).normalize(), ',f')}%"
    return _percent_text(number)


def _part(change: Any, name: str) -> Any:
    return change.get(name) if isinstance(change, dict) else getattr(change, name, None)


@register.filter
def change_percent(change: Any, empty: str = "—") -> str:
    """A change against an earlier period ({delta, percent}, a dict or an object) as the pages
    show it: +12%, −8%, "new" when there was nothing before, `empty` ("—") when nothing both
    times. The sign comes from the change itself, so a tiny rise reads +<0.1%, never 0%."""
    if change is None or change == "":
        return empty
    delta = _decimal(_part(change, "delta")) or Decimal(0)
    number = _decimal(_part(change, "percent"))
    if number is None:
        return "new" if delta else empty
    text = _percent_text(abs(number))
    return f"+{text}" if delta > 0 else f"−{text}" if delta < 0 else text


@register.filter
def amount(value: Any, unit: str = "") -> str:
    """A quantity with its unit, each kind in its format: money for currency codes, durations
    for seconds, compact counts with the unit's word otherwise."""
    unit = unit or ""
    if len(unit) == 3 and unit.isupper():
        return money(value, unit)
    if unit == "seconds":
        return duration(value)
    text = compact(value)
    return f"{text} {unit}".strip() if text else ""


@register.filter
def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, str(metric).replace("_", " ").capitalize())


def _zone(workspace_or_zone: Any) -> ZoneInfo:
    name = getattr(workspace_or_zone, "time_zone", workspace_or_zone) or "UTC"
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _instant_text(moment: datetime) -> str:
    return f"{moment.day} {moment:%b %Y, %H:%M} {moment.tzname()}"


def _aware(value: datetime) -> datetime:
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


@register.simple_tag
def local_time(value: datetime | None, workspace_or_zone: Any = "UTC", empty: str = "—") -> str:
    """An instant in the workspace's time zone, the zone named: "6 Dec 2026, 13:00 CET"."""
    if value is None:
        return empty
    return _instant_text(_aware(value).astimezone(_zone(workspace_or_zone)))


@register.filter
def instant(value: datetime | None) -> str:
    """An instant in the active time zone (the workspace's on its pages, accounts.permissions),
    the zone named, in local_time's format: "6 Dec 2026, 13:00 CET"."""
    if not value:
        return ""
    return _instant_text(timezone.localtime(_aware(value)))


def relative(value: datetime, now: datetime | None = None) -> str:
    """How long ago or ahead, in duration's units: "just now", "12 min ago", "4.6 h ago",
    "in 3.2 days". Never "1 day, 4 hours ago" beside "3 minutes ago"."""
    seconds = ((now or timezone.now()) - _aware(value)).total_seconds()
    if abs(seconds) < 60:
        return "just now"
    return f"{duration(seconds)} ago" if seconds > 0 else f"in {duration(-seconds)}"


@register.simple_tag
def moment(value: datetime | None, empty: str = "Never", absolute: bool = False, due: bool = False) -> SafeString:
    """A relative time ("3 min ago", "in 40 min") in a <time> whose title is the instant in the
    workspace's time zone, named.

    With absolute=True the instant is also shown, for the detail page's facts. With due=True (a
    scheduled time) a moment already passed reads "due now", not "2 min ago".
    """
    if not value:
        return format_html('<span class="muted">{}</span>', empty)
    value = _aware(value)
    now = timezone.now()
    words = "due now" if due and value <= now else relative(value, now)
    exact = instant(value)
    html = format_html('<time datetime="{}" title="{}">{}</time>', value.astimezone(UTC).isoformat(), exact, words)
    if absolute:
        html = format_html('{} <span class="muted small">{}</span>', html, exact)
    return html
