"""Company Settings → Budgets. Choices of application and license come from the form's
workspace only; the provider is validated against the registry."""
from __future__ import annotations

import re
from typing import Any

from django import forms

from accounts.models import Workspace
from alerts.models import Budget
from integrations.providers.registry import PROVIDERS

CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


class BudgetForm(forms.ModelForm):
    provider = forms.ChoiceField(required=False, label="Provider")

    class Meta:
        model = Budget
        fields = ["name", "scope", "application", "license", "provider", "amount", "currency", "warn_percent", "exceed_percent", "alert_on_forecast"]
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
        self.fields["application"].queryset = workspace.applications.order_by("name")
        self.fields["license"].queryset = workspace.licenses.select_related("application").order_by("plan_name")
        self.fields["provider"].choices = [("", "—"), *sorted(((slug, p.name) for slug, p in PROVIDERS.items()), key=lambda c: c[1])]

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
        data = super().clean()
        scope = data.get("scope")
        needed = {Budget.Scope.APPLICATION: "application", Budget.Scope.LICENSE: "license", Budget.Scope.PROVIDER: "provider"}.get(scope)
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
