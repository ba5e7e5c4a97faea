"""The one set of number, money, duration, metric and time formats every page uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.template import Context, Template

from doow.templatetags.formats import (
    amount,
    change_percent,
    compact,
    duration,
    local_time,
    metric_label,
    money,
    percent,
)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "0"), (987, "987"), (12345, "12,345"), (999_999, "999,999"), (1_234_567, "1.2M"),
        (939_412_345, "939M"), (1_000_000, "1M"), (2_500_000_000, "2.5B"), (Decimal("0.25"), "0.25"),
        (Decimal("12345.678"), "12,346"), (-1_500_000, "-1.5M"), (None, ""), ("n/a", "n/a"),
    ],
)  # fmt: skip
def test_compact(value, shown):
    assert compact(value) == shown


@pytest.mark.parametrize(
    ("value", "currency", "shown"),
    [
        (Decimal("1234.5"), "USD", "$1,234.50"), (Decimal("-12"), "USD", "−$12.00"), (99, "EUR", "99.00 EUR"),
        (Decimal("0.0042"), "USD", "$0.0042"), (0, "USD", "$0.00"), ("", "USD", ""),
    ],
)  # fmt: skip
def test_money(value, currency, shown):
    assert money(value, currency) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (45, "45 s"),
        (720, "12 min"),
        (16_560, "4.6 h"),
        (276_480, "3.2 days"),
        (Decimal("16592843.38"), "192.0 days"),
        (Decimal("0.35"), "0.3 s"),
        (4.25, "4.2 s"),
        (timedelta(hours=4, minutes=36), "4.6 h"),
        (59.7, "1 min"),  # never "60 s"
        (90, "2 min"),
        (3599, "1.0 h"),  # never "60 min"
        (None, ""),
    ],
)
def test_duration(seconds, shown):
    assert duration(seconds) == shown


def test_amount_picks_the_format_of_the_unit():
    assert amount(Decimal("1234567"), "tokens") == "1.2M tokens"
    assert amount(Decimal("3280.07"), "USD") == "$3,280.07"
    assert amount(16_560, "seconds") == "4.6 h"
    assert amount(12345, "requests") == "12,345 requests"


def test_metric_labels_are_words():
    assert metric_label("cache_write_tokens") == "Cache write tokens"
    assert metric_label("compute_seconds") == "Compute time"
    assert metric_label("some_new_metric") == "Some new metric"


def test_local_time_names_the_workspace_zone():
    moment = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert local_time(moment, "Europe/Paris") == "6 Dec 2026, 13:00 CET"
    assert local_time(moment, "America/New_York") == "6 Dec 2026, 07:00 EST"
    assert local_time(moment, "Not/AZone") == "6 Dec 2026, 12:00 UTC"
    assert local_time(None) == "—"


def test_the_filters_load_in_templates():
    out = Template("{% load formats %}{{ n|compact }} · {{ c|money }} · {% local_time t 'UTC' %}").render(
        Context({"n": 1_234_567, "c": Decimal("5"), "t": datetime(2027, 3, 28, 23, 30, tzinfo=UTC)})
    )
    assert out == "1.2M · $5.00 · 28 Mar 2027, 23:30 UTC"


def test_instant_is_local_times_format_in_the_active_zone():
    from django.utils import timezone

    from doow.templatetags.formats import instant

    moment = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    with timezone.override("Europe/Paris"):
        assert instant(moment) == local_time(moment, "Europe/Paris") == "6 Dec 2026, 13:00 CET"
        assert instant(datetime(2026, 12, 6, 12, 0)) == "6 Dec 2026, 13:00 CET"  # naive is UTC
    assert instant(None) == ""


@pytest.mark.parametrize(
    ("offset", "shown"),
    [
        (timedelta(seconds=-20), "just now"),
        (timedelta(minutes=-3), "3 min ago"),
        (timedelta(hours=-28), "28.0 h ago"),  # never "1 day, 4 hours ago"
        (timedelta(days=-3, hours=-5), "3.2 days ago"),
        (timedelta(minutes=40), "in 40 min"),
        (timedelta(hours=4, minutes=36), "in 4.6 h"),
    ],
)
def test_relative_times_use_the_duration_units(offset, shown):
    from doow.templatetags.formats import relative

    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert relative(now + offset, now) == shown


def test_moment_shows_the_relative_time_with_the_instant_on_hover_and_one_format_for_both():
    from django.utils import timezone

    now = timezone.now()  # the pinned test clock
    template = Template(
        "{% load page_helpers %}{% moment past %} | {% moment past absolute=True %} | {% moment due due=True %}"
        " | {% moment none empty='Not yet' %} | {{ past|utc }}"
    )
    with timezone.override("America/New_York"):
        out = template.render(
            Context({"past": now - timedelta(hours=4, minutes=36), "due": now - timedelta(minutes=2), "none": None})
        )
        exact = local_time(now - timedelta(hours=4, minutes=36), "America/New_York")
    assert exact.endswith(("EST", "EDT"))
    first, absolute, due, empty, utc = out.split(" | ")
    assert first.endswith(f'title="{exact}">4.6 h ago</time>')
    assert absolute.endswith(f'4.6 h ago</time> <span class="muted small">{exact}</span>')
    assert due.endswith(">due now</time>")
    assert empty == '<span class="muted">Not yet</span>'
    assert utc == exact


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1234567, "1,234,567"),
        (Decimal("0.004821000"), "0.004821"),
        (Decimal("0.000000123"), "0.000000123"),  # was 0 at six decimals
        (Decimal("0.0000004"), "0.0000004"),
        (Decimal("1.23E-7"), "0.000000123"),  # never exponent notation
        (Decimal("-0.000000000001"), "-0.000000000001"),
        (Decimal("1234.5"), "1,234.5"),
        (Decimal("1234.567891"), "1,234.567891"),  # was 1,234.57
        (Decimal("123456789012.123456789"), "123,456,789,012.123456789"),
        (Decimal("1E+3"), "1,000"),
        (Decimal("42.000000000"), "42"),
        (0, "0"),
        (0.1, "0.1"),
        (None, ""),
        ("", ""),
    ],
)
def test_quantity_is_exact_for_raw_rows_and_titles(value, shown):
    template = Template("{% load formats %}{{ value|quantity }}")
    assert template.render(Context({"value": value})) == shown


@pytest.mark.parametrize(
    ("span", "shown"),
    [
        (timedelta(minutes=15), "15 minutes"), (timedelta(days=1), "1 day"),
        (timedelta(hours=2, minutes=30), "2 hours 30 minutes"), (timedelta(seconds=4.2), "4.2 s"), (None, ""),
    ],
)  # fmt: skip
def test_duration_words_for_configured_spans(span, shown):
    from doow.templatetags.formats import duration_words

    assert duration_words(span) == shown


def test_page_helpers_lends_the_formats_own_filters_not_copies():
    from doow.templatetags import formats, page_helpers

    lent = {"utc": formats.instant, "quantity": formats.quantity, "duration_words": formats.duration_words}
    for name, function in lent.items():
        assert page_helpers.register.filters[name] is function
    assert page_helpers.register.tags["moment"].__wrapped__ is formats.moment


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (42, "42%"), (Decimal("42.49"), "42%"), (Decimal("42.5"), "43%"), (Decimal("9.96"), "10%"), (42.51, "43%"), (160.2, "160%"),
        (Decimal("1234.5"), "1,235%"), (Decimal("7.46"), "7.5%"), (7.0, "7%"), (7.25, "7.3%"), (Decimal("0.4"), "0.4%"), (Decimal("0.05"), "0.1%"),
        (Decimal("0.04"), "<0.1%"), (1e-9, "<0.1%"), (0, "0%"), (Decimal("0.00"), "0%"), (-5.25, "−5.3%"),
        (Decimal("-25"), "−25%"), (Decimal("-0.01"), "−<0.1%"), ("105.0", "105%"), (None, "—"), ("", "—"),
        ("n/a", "—"), (float("nan"), "—"),
    ],
)  # fmt: skip
def test_percent_is_whole_from_ten_and_one_decimal_below(value, shown):
    assert percent(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [(Decimal("20.00"), "20%"), (Decimal("12.25"), "12.25%"), (Decimal("0.50"), "0.5%"), (7.5, "7.5%"), (None, "—")],
)  # fmt: skip
def test_percent_exact_shows_a_configured_rate_as_entered(value, shown):
    assert percent(value, "exact") == shown


class _Change:
    def __init__(self, delta, percent):
        self.delta, self.percent = delta, percent


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ({"delta": Decimal(6), "percent": Decimal(50)}, "+50%"),
        ({"delta": Decimal(-4), "percent": Decimal("-33.33")}, "−33%"),
        ({"delta": 12.0, "percent": 100.0}, "+100%"),
        ({"delta": Decimal(30), "percent": Decimal(250)}, "+250%"),
        ({"delta": Decimal("0.5"), "percent": Decimal("7.46")}, "+7.5%"),
        ({"delta": Decimal("0.0001"), "percent": Decimal("0.001")}, "+<0.1%"),
        ({"delta": Decimal("-0.0001"), "percent": Decimal("-0.001")}, "−<0.1%"),
        ({"delta": Decimal(0), "percent": Decimal(0)}, "0%"),
        ({"delta": Decimal(6), "percent": None}, "new"),
        ({"delta": Decimal(0), "percent": None}, "—"),
        (_Change(Decimal(-12), Decimal(-100)), "−100%"),
        (_Change(Decimal(5), None), "new"),
        (None, "—"),
    ],
)  # fmt: skip
def test_change_percent_signs_a_change_and_says_new_or_nothing(change, shown):
    assert change_percent(change) == shown


def test_change_percent_takes_the_words_for_nothing_both_times():
    assert change_percent({"delta": 0, "percent": None}, "no change") == "no change"
    assert change_percent({"delta": 3, "percent": None}, "no change") == "new"


def test_the_change_partials_render_a_fall_with_a_minus_and_the_arrow_down():
    from usage.spend import Change

    fall = {"previous": Decimal(12), "delta": Decimal(-4), "percent": Decimal(-4) / 12 * 100}
    tile = Template('{% include "usage/_delta.html" with change=change currency="USD" %}').render(
        Context({"change": fall})
    )
    assert "delta-down" in tile and "▼ −$4.00 (−33%)" in " ".join(tile.split())
    inline = Template('{% include "usage/_delta.html" with change=change unit="tokens" inline=True %}').render(
        Context({"change": {"previous": Decimal(0), "delta": Decimal(0), "percent": None}})
    )
    assert "no change vs 0 tokens" in inline
    top = Template('{% include "usage/_top_changes.html" with items=items empty="" %}').render(
        Context({"items": [{"name": "gpt-4o", "change": Change("gpt-4o", "USD", Decimal(9), Decimal(12), Decimal(0))}]})
    )
    assert '<td class="num delta-down">−25%</td>' in top
