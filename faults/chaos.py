"""Chaos against the sandbox: a seeded plan of transport faults, and the sandbox's truth row
by row, to tell whether what a run of syncs stored converged to it without losing or doubling
anything.

Only fault kinds the sandbox serves today are planned: 5xx, 429 with a short (or, now and then,
too long) Retry-After, answers slowed under the timeout and past it. Connection resets and
bodies cut short come with issue 8 item 2.7 (another branch): add them to FAULT_KINDS there.
A provider joins the chaos test with a TRUTHS entry saying how its truth maps onto stored rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from integrations.models import Integration
from sandbox import openai as sandbox_openai
from usage.models import UsageRecord

Key = tuple  # (bucket_start, bucket_end, project, model, operation, metric)
CENT_FRACTION = Decimal("0.000001")  # the sandbox prices to the millionth of a dollar


# ---------------------------------------------------------------- the truth, as rows
def openai_truth(start: datetime, end: datetime) -> dict[Key, Decimal]:
    metrics = {
        "input_tokens": "input_tokens",
        "output_tokens": "output_tokens",
        "cached_input_tokens": "input_cached_tokens",
        "cache_write_tokens": "input_cache_write_tokens",
        "requests": "num_model_requests",
    }
    truth: dict[Key, Decimal] = {}
    for r in sandbox_openai.truth_usage(start, end):
        for metric, source in metrics.items():
            if value := getattr(r, source):
                truth[(r.hour_start, r.hour_start + timedelta(hours=1), r.project_id, r.model, "", metric)] = Decimal(
                    value
                )
    for c in sandbox_openai.truth_costs(start, end):
        model, _, kind = c.line_item.partition(", ")
        truth[(c.day, c.day + timedelta(days=1), c.project_id, model, kind, "cost")] = c.amount.quantize(CENT_FRACTION)
        if c.quantity:
            truth[(c.day, c.day + timedelta(days=1), c.project_id, model, kind, "billed_quantity")] = Decimal(
                c.quantity
            )
    # The other usage endpoints (hourly; vector stores per UTC day), each row under its operation.
    kind_metrics = {"input_tokens": "input_tokens", "num_model_requests": "requests", "images": "images",
                    "characters": "characters", "seconds": "audio_seconds", "usage_bytes": "storage_byte_days",
                    "num_sessions": "sessions"}  # fmt: skip
    for name, kind in sandbox_openai.USAGE_KINDS.items():
        width = timedelta(days=1) if name == "vector_stores" else timedelta(hours=1)
        for r in sandbox_openai.truth_kind(name, start, end):
            for source_field, value in zip(kind.fields, r.values, strict=True):
                if value:
                    key = (
                        r.hour_start,
                        r.hour_start + width,
                        r.project_id,
                        r.model or "",
                        r.source or name,
                        kind_metrics[source_field],
                    )
                    truth[key] = Decimal(value)
    return truth


def stored_rows(integration: Integration) -> dict[Key, Decimal]:
    rows: dict[Key, Decimal] = {}
    fields = ("bucket_start", "bucket_end", "project", "model", "operation", "metric", "quantity")
    # The provider's rows only: estimates are computed from them (their own tests check them).
    for *key, quantity in (
        UsageRecord.objects.filter(integration=integration).exclude(metric="estimated_cost").values_list(*fields)
    ):
        if quantity:  # a zero the provider listed is no usage: neither lost nor doubled
            rows[tuple(key)] = quantity.quantize(CENT_FRACTION) if key[-1] == "cost" else quantity
    return rows


@dataclass(frozen=True)
class Truth:
    provider: str
    rows: Callable[[datetime, datetime], dict[Key, Decimal]]
    paths: tuple[str, ...]  # sandbox path prefixes the faults target


TRUTHS: dict[str, Truth] = {
    "openai": Truth("openai", openai_truth, ("/openai/v1/organization/usage", "/openai/v1/organization/costs")),
}


@dataclass(frozen=True)
class Comparison:
    lost: list[Key]  # in the truth, missing or short
    doubled: list[Key]  # stored beyond the truth: extra rows or quantities too high

    def describe(self, stored: dict[Key, Decimal], truth: dict[Key, Decimal]) -> str:
        show = [f"lost {k}: {stored.get(k)} of {truth[k]}" for k in self.lost[:5]]
        show += [f"doubled {k}: {stored[k]} of {truth.get(k)}" for k in self.doubled[:5]]
        return "\n".join(show)


def compare(stored: dict[Key, Decimal], truth: dict[Key, Decimal], *, complete: bool) -> Comparison:
    """`complete`: the whole truth must be there; otherwise only what is stored is judged (a
    sync that failed halfway has stored less, never more)."""
    lost = [k for k, v in truth.items() if (k in stored and stored[k] < v) or (complete and k not in stored)]
    doubled = [k for k, v in stored.items() if k not in truth or v > truth[k]]
    return Comparison(sorted(lost), sorted(doubled))


# ---------------------------------------------------------------- the plan
@dataclass(frozen=True)
class FaultKind:
    name: str
    weight: int
    make: Callable[[random.Random], dict[str, Any]]  # sandbox.fault keyword arguments


FAULT_KINDS: tuple[FaultKind, ...] = (
    FaultKind("5xx", 4, lambda rng: {"status": rng.choice([500, 502, 503, 504]), "times": rng.choice([1, 2, 3, 4, 6])}),
    FaultKind("429, short Retry-After", 2, lambda rng: {"status": 429, "times": rng.choice([1, 2, 4]),
                                                           "headers": {"Retry-After": rng.choice(["0", "1"])}}),
    FaultKind("429, Retry-After past the inline limit", 1, lambda rng: {"status": 429, "times": 1, "headers": {"Retry-After": "5"}}),
    FaultKind("slow answer", 2, lambda rng: {"status": 200, "times": rng.choice([1, 3]), "delay": rng.choice([0.05, 0.2])}),
    FaultKind("answer past the timeout", 1, lambda rng: {"status": 200, "times": rng.choice([1, 4]), "delay": 1.0}),
)  # fmt: skip


@dataclass
class FaultPlan:
    """Seeded: the same seed injects the same faults, in the same order, on the same paths."""

    seed: int
    paths: tuple[str, ...]
    rng: random.Random = field(init=False)
    injected: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def next_round(self, expected_requests: int, *, one_fatal: bool = False) -> list[dict[str, Any]]:
        """2–4 faults for a sync expected to send about `expected_requests` requests to each
        path, each armed to strike somewhere among them; `one_fatal` adds one that outlasts the
        retries (so the sync fails and the next one must resume)."""
        kinds = [
            self.rng.choices(FAULT_KINDS, weights=[k.weight for k in FAULT_KINDS])[0]
            for _ in range(self.rng.randint(2, 4))
        ]
        specs = [(kind.name, kind.make(self.rng)) for kind in kinds]
        if one_fatal:
            specs.append(("5xx outlasting the retries", {"status": 503, "times": 4}))
        faults = []
        for name, spec in specs:
            latest = max(0, expected_requests - spec.get("times", 1))
            armed = {"path_prefix": self.rng.choice(self.paths), "after": self.rng.randint(0, latest), **spec}
            self.injected.append(f"{name} on {armed['path_prefix']} after {armed['after']}")
            faults.append(armed)
        return faults
