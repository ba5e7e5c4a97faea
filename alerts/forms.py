"""Company Settings → Budgets, Anomaly rule and Webhook. A budget's choices of application and
license come from the form's workspace only; the provider is validated against the registry."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from accounts.models import Workspace
from alerts.models import AnomalyRule, Budget
from integrations.providers.registry import PROVIDERS

CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


class BudgetForm(forms.ModelForm):
    provider = forms.ChoiceField(required=False, label="Provider")

    class Meta:
        model = Budget
        fields = [
            "name",
            "scope",
            "application",
            "license",
            "provider",
            "amount",
            "currency",
            "warn_percent",
            "exceed_percent",
            "alert_on_forecast",
        ]
        labels = {
            "amount": "Monthly amount",
            "warn_percent": "Warn at (% of budget)",
            "exceed_percent": "Exceeded at (% of budget)",
            "alert_on_forecast": "Alert when forecast to exceed",
        }
        widgets = {"scope": forms.RadioSelect}

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = self.instance.workspace = workspace
        cast(forms.ModelChoiceField, self.fields["application"]).queryset = workspace.applications.order_by("name")
        cast(forms.ModelChoiceField, self.fields["license"]).queryset = workspace.licenses.select_related(
            "application"
        ).order_by("plan_name")
        cast(forms.ChoiceField, self.fields["provider"]).choices = [
            ("", "—"),
            *sorted(((slug, p.name) for slug, p in PROVIDERS.items()), key=lambda c: c[1]),
        ]

    def clean_currency(self) -> str:
        value = (self.cleaned_data.get("currency") or "USD").strip().upper()
        if not CURRENCY_RE.match(value):
            raise forms.ValidationError("Use a three-letter ISO 4217 code, e.g. USD.")
        return value

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if self.workspace.budgets.filter(name=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("Another budget already has this name.")
        return name

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        scope = data.get("scope")
        needed_for: dict[str, str] = {
            Budget.Scope.APPLICATION: "application",
            Budget.Scope.LICENSE: "license",
            Budget.Scope.PROVIDER: "provider",
        }
        needed = needed_for.get(scope or "")
        if needed and not data.get(needed):
            self.add_error(needed, f"Choose the {needed} this budget is for.")
        # Only the chosen scope's target is kept, so a budget never filters on two things.
        for other in ("application", "license", "provider"):
            if other != needed:
                data[other] = "" if other == "provider" else None
        warn, exceed = data.get("warn_percent"), data.get("exceed_percent")
        if warn and exceed and warn >= exceed:
            self.add_error("warn_percent", "The warning must come before the exceeded level.")
        return data


class AnomalyRuleForm(forms.ModelForm):
    """Company Settings → Anomaly rule: the three thresholds and the switch (docs/alerts.md)."""

    class Meta:
        model = AnomalyRule
        fields = ["enabled", "ratio", "mads", "min_amount"]
        labels = {
            "enabled": "Raise spend anomalies",
            "ratio": "Times the median",
            "mads": "MADs above the median",
            "min_amount": "Minimum USD above the median",
        }
        help_texts = {
            "ratio": "A day's spend must exceed the median × this (1–100; default 1.5).",
            "mads": "…and the median + this many median absolute deviations (0–100; default 3).",
            "min_amount": "…and be at least this many USD above the median (0–1,000,000; default 50).",
        }

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instance.workspace = workspace
        limits = {
            "ratio": (Decimal("1"), Decimal("100")),
            "mads": (Decimal("0"), Decimal("100")),
            "min_amount": (Decimal("0"), Decimal("1000000")),
        }
        for name, (low, high) in limits.items():
            field: Any = self.fields[name]  # DecimalFields: the stubs type their bounds as int
            field.min_value, field.max_value = low, high
            field.validators += [MinValueValidator(low), MaxValueValidator(high)]
            field.widget.attrs.update(min=str(low), max=str(high), step="0.01")
            field.required = True

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        ratio, mads, floor = data.get("ratio"), data.get("mads"), data.get("min_amount")
        if ratio == 1 and mads == 0 and floor == 0:
            raise forms.ValidationError(
                "With 1×, 0 MADs and $0 every day above its median would alert: raise at least one."
            )
        return data


class WebhookForm(forms.Form):
    url = forms.URLField(
        label="Endpoint URL",
        max_length=2000,
        assume_scheme="https",
        help_text="An https URL on a public address; Doow POSTs JSON there for every alert change it tells admins about.",
        # A text box (the stylesheet styles text inputs), with the keyboard and checks of a URL.
        widget=forms.TextInput(
            attrs={"inputmode": "url", "autocomplete": "off", "spellcheck": "false", "placeholder": "https://"}
        ),
    )

    # The address rules (https, public) are checked by alerts.webhooks.webhook_save, which the
    # view calls: one DNS lookup per save.
