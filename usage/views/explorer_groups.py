"""Wide splits in the explorer: the split's values (models, projects, …) ranked by spend and
shown TOP_GROUPS at a time, the others folded into lines that keep every total whole.

A split by model over a month holds 40 models, by project hundreds: a chart of 40 stacked
series and a table of 160 lines are unreadable and cost the page much of its time. So the chart
and both tables show one *page* of groups (the largest first), and the groups before and after
it as one line each ("Top 10", "Other (30 more)"), each a link to the page listing them. Lines
plus folds always add up to the page's totals: no money is dropped, every group is reachable
(and the CSV export is never folded).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# Groups listed per page; more than one group past it are folded into "Other".
TOP_GROUPS = 10
# The query parameter naming the page of groups (the raw rows' pager is `page`).
PARAM = "groups"


@dataclass(frozen=True)
class Fold:
    """A line standing for several groups: those ranked before this page (`before`) or after it.
    Hashable, so it takes the place of a group value in the sums."""

    label: str
    page: int  # the page of groups that lists the first of them
    before: bool


class GroupPage:
    """One page of ranked groups. `key` maps any group value to itself (on this page) or to
    the fold holding it; `order` sorts keys: the fold before, this page by rank, the fold after."""

    def __init__(self, ranked: list[Any], number: int, *, noun: str) -> None:
        self.total = len(ranked)  # groups in the whole split
        # At most TOP_GROUPS + 1 groups are one page: folding a single group would hide it for nothing.
        self.pages = 1 if len(ranked) <= TOP_GROUPS + 1 else -(-len(ranked) // TOP_GROUPS)
        self.number = min(max(number, 1), self.pages)
        start, end = ((self.number - 1) * TOP_GROUPS, self.number * TOP_GROUPS) if self.pages > 1 else (0, len(ranked))
        self.shown = ranked[start:end]
        self.first_rank, self.last_rank = start + 1, start + len(self.shown)
        self.before = Fold(f"Top {start} {noun}", self.number - 1, True) if start else None
        rest = len(ranked) - end
        self.after = Fold(f"Other ({rest} more)", self.number + 1, False) if rest > 0 else None
        self._rank = {value: i for i, value in enumerate(ranked)}
        self._order: dict[Any, int] = {value: i for i, value in enumerate(self.shown)}
        if self.before:
            self._order[self.before] = -1
        if self.after:
            self._order[self.after] = len(self.shown)

    @property
    def folded(self) -> bool:
        return self.pages > 1

    def key(self, value: Any) -> Any:
        if value in self._order:
            return value
        return self.before if self._rank.get(value, self.total) < self.first_rank - 1 else self.after

    def order(self, key: Any) -> int:
        return self._order.get(key, len(self.shown) + 1)


def rank(
    values: Iterable[Any],
    *,
    spend_now: Mapping[Any, Mapping[str, Decimal]],
    spend_before: Mapping[Any, Mapping[str, Decimal]],
    volume: Mapping[Any, Decimal],
    names: Mapping[Any, str],
) -> list[Any]:
    """Group values, largest first: by spend in each currency (USD first, then by code; never
    added across currencies), then by the previous period's spend, then by `volume` (the
    charted metric, for splits without money), then by name."""
    currencies = sorted(
        {c for table in (spend_now, spend_before) for amounts in table.values() for c in amounts},
        key=lambda c: (c != "USD", c),
    )
    empty: dict[str, Decimal] = {}

    def key(value: Any) -> tuple:
        now, before = spend_now.get(value, empty), spend_before.get(value, empty)
        return (
            tuple(-now.get(c, 0) for c in currencies),
            tuple(-before.get(c, 0) for c in currencies),
            -volume.get(value, 0),
            value is None or value == "",  # the unattributed / not reported last among equals
            str(names.get(value, value)).lower(),
        )

    return sorted(set(values), key=key)


def page_of(ranked: list[Any], requested: str | None, *, noun: str) -> GroupPage:
    """The requested page of `ranked` (the first when absent or not a number; the nearest when out of range)."""
    try:
        number = int(requested or 1)
    except (TypeError, ValueError):
        number = 1
    return GroupPage(ranked, number, noun=noun)


def spend_by_group(rows: Iterable[Any] | None) -> dict[Any, dict[str, Decimal]]:
    """{group value: {currency: spend}} of spend rows (usage.spend.SpendRow)."""
    sums: dict[Any, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for r in rows or ():
        sums[r.key][r.currency] += r.amount
    return sums
