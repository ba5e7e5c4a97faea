"""The price override form of Company Settings → Pricing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from integrations.providers.registry import PROVIDERS
from usage.dates import date_input_attrs, validate_usage_day
from usage.models import PriceOverride
from usage.pricing.prices import PRICED_METRICS

METRIC_LABELS = {
    "input_tokens": "Input tokens (per 1M)",
    "cached_input_tokens": "Cached input tokens (per 1M)",
    "cache_write_tokens": "Cache write tokens (per 1M)",
    "output_tokens": "Output tokens (per 1M)",
    "requests": "Requests (per request)",
    "compute_seconds": "Compute seconds (per second)",
    "api_calls": "Server tool calls (per call)",
}


class PriceOverrideForm(forms.ModelForm):
    provider = forms.ChoiceField(choices=())
    # provisioned_hours has no unit price to override (a PTU bills per hour): not offered.
    metric = forms.ChoiceField(
        choices=[("", "—"), *((m, METRIC_LABELS[m]) for m in PRICED_METRICS if m in METRIC_LABELS)], required=False
    )

    class Meta:
        model = PriceOverride
        fields = ("kind", "provider", "model", "metric", "discount_percent", "price", "effective_from", "note")
        labels = {"discount_percent": "Discount (%)", "price": "Unit price (USD)", "effective_from": "Applies from"}
        help_texts = {
            "model": "Unit prices only: the model exactly as usage shows it (e.g. gpt-4o-2024-08-06).",
            "price": "Unit prices only: USD per 1M tokens for token metrics, per request or per second otherwise.",
            "effective_from": "Usage from this day (UTC) on is priced with it; earlier estimates stay as they are.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = sorted(((slug, p.name) for slug, p in PROVIDERS.items()), key=lambda c: c[1])  # type: ignore[attr-defined]
        self.fields["effective_from"].widget = forms.DateInput(attrs={"type": "date", **date_input_attrs()})
        self.fields["effective_from"].validators.append(validate_usage_day)
        self.fields["model"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Django's clean() returns cleaned_data
        kind = data.get("kind")
        if kind == PriceOverride.Kind.DISCOUNT:
            percent = data.get("discount_percent")
            if percent is None or not Decimal(0) < percent <= Decimal(100):
                self.add_error("discount_percent", "A discount is a percentage above 0 and at most 100.")
            data["model"], data["metric"], data["price"] = "", "", None
        elif kind == PriceOverride.Kind.UNIT_PRICE:
            if not data.get("model", "").strip():
                self.add_error("model", "Name the model this price is for.")
            if not data.get("metric"):
                self.add_error("metric", "Choose what the price is for.")
            if data.get("price") is None or data["price"] < 0:
                self.add_error("price", "Enter a price of 0 or more.")
            data["model"] = data.get("model", "").strip()
            data["discount_percent"] = None
        return data
