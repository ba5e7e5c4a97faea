"""Forms of Company Settings → Applications, Licenses and Attribution rules, and the date
range every usage filter shares (the explorer, an integration's usage tab, the export).

Every choice of an application or license is limited to the form's workspace, so a posted id
of another workspace's object is simply not a valid choice.
"""

from __future__ import annotations

import re
from typing import Any, cast

from django import forms

from accounts.models import Workspace
from integrations.providers.registry import PROVIDERS
from usage.attribution import parse_label_pattern
from usage.dates import LICENSE_YEARS_AHEAD, date_input_attrs, validate_license_day, validate_usage_day
from usage.dimensions import DIMENSIONS
from usage.dimensions import label as dimension_label
from usage.models import Application, AttributionRule, License, Team

CATEGORY_SUGGESTIONS = ("AI provider", "Cloud platform", "SaaS", "Internal tool", "Data platform")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")

PATTERN_HELP = {
    "account": "Organization, account, subscription or billing account.",
    "project": "Project, workspace or API key group.",
    "region": "e.g. us-east-1, eastus.",
    "model": "e.g. gpt-4o, claude-3-5-sonnet*.",
    "deployment": "A deployment or inference profile name.",
    "endpoint": "An API endpoint, e.g. completions.",
    "api_key": "The key's id as the provider reports it (never the secret).",
    "resource": "A resource name or ARN.",
    "operation": "An operation or API call name.",
    "service_tier": "e.g. default, flex, priority (OpenAI); standard, batch, priority (Anthropic).",
    "batch": "true for Batch API traffic, false otherwise (OpenAI).",
    "context_window": "e.g. 0-200k, 200k-1M (Anthropic).",
    "inference_geo": "e.g. global, us (Anthropic).",
    "speed": "standard or fast (Anthropic).",
    "label": "A label the provider keeps with the usage, as key=value (e.g. team=search, team=search-*). "
    "Google Vertex AI rows carry the billing export's labels.",
}
# Labels come from the one dimension definition (usage/dimensions.py).
PATTERN_LABELS = {name: dimension_label(name) for name in DIMENSIONS}
RULE_PATTERN_FIELDS = (*AttributionRule.MATCH_FIELDS, "label")


def _text(attrs: dict[str, Any] | None = None) -> forms.TextInput:
    return forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", **(attrs or {})})


REVERSED = "reversed"  # the ValidationError code of a "To" before its "From"


class DateRangeForm(forms.Form):
    """From / To (calendar days of the workspace's time zone, both included) within the dates Doow accepts (usage.dates).

    A day outside them is a field error (code "out_of_range") and never reaches a query, where
    `9999-12-31 + 1 day` would overflow; the browser's date picker is held to the same bounds.
    """

    date_from = forms.DateField(label="From", required=False, validators=[validate_usage_day])
    date_to = forms.DateField(label="To", required=False, validators=[validate_usage_day])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("date_from", "date_to"):
            # Per request: "one year after today" moves with the clock.
            self.fields[name].widget = forms.DateInput(attrs=date_input_attrs())

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", forms.ValidationError("“To” is before “From”.", code=REVERSED))
        return data


# A license's terms (its kind, period and amounts), also the admin's list columns.
LICENSE_TERMS = ("kind", "start_date", "end_date", "committed_amount", "currency", "seat_count")
# The license fields a person edits, on the Licenses page and in the admin (the workspace is the
# application's; a new model field is not editable until listed here).
LICENSE_FIELDS = ("application", "plan_name", *LICENSE_TERMS)


def check_license_period(form: forms.BaseForm, data: dict[str, Any]) -> None:
    """A license's end never before its start (the page's and the admin's clean())."""
    start, end = data.get("start_date"), data.get("end_date")
    if start and end and end < start:
        form.add_error("end_date", "The end date is before the start date.")


def bound_license_dates(form: forms.BaseForm) -> None:
    """A license's start and end within 2000-01-01 … ten years ahead: a contract may run for
    years, but year 1 or 9999 would make its consumption chart fill millions of days."""
    for name in ("start_date", "end_date"):
        field = form.fields.get(name)
        if field is not None:
            field.validators.append(validate_license_day)
            field.widget.attrs.update(
                {k: v for k, v in date_input_attrs(years=LICENSE_YEARS_AHEAD).items() if k != "type"}
            )


class ApplicationForm(forms.ModelForm):
    class Meta:
        model = Application
        fields = ["name", "vendor", "owner", "team", "category"]
        labels = {"team": "Team / cost centre"}
        widgets = {
            "name": _text({"placeholder": "e.g. Support chatbot"}),
            "vendor": _text({"placeholder": "e.g. OpenAI"}),
            "owner": _text({"placeholder": "e.g. Dana Smith"}),
            "category": _text({"list": "category-suggestions"}),
        }
        help_texts = {
            "vendor": "Who sells it.",
            "category": "e.g. AI provider, Cloud platform, SaaS.",
            "owner": "Who answers for it: a person (its team is below).",
            "team": "The team that owns its spend: the overview and the explorer split spend by team.",
        }

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = self.instance.workspace = workspace
        # Only this workspace's teams are choices: another workspace's id is simply invalid.
        team = cast(forms.ModelChoiceField, self.fields["team"])
        team.queryset = workspace.teams.all()
        team.empty_label = "No team"

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        taken = self.workspace.applications.filter(name__iexact=name).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("An application with this name already exists.")
        return name


class TeamForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["name", "cost_centre"]
        labels = {"name": "Team", "cost_centre": "Cost centre"}
        widgets = {
            "name": _text({"placeholder": "e.g. Platform"}),
            "cost_centre": _text({"placeholder": "e.g. CC-4100"}),
        }

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = self.instance.workspace = workspace

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if self.workspace.teams.filter(name__iexact=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("A team with this name already exists.")
        return name

    def clean_cost_centre(self) -> str:
        return self.cleaned_data["cost_centre"].strip()


class LicenseForm(forms.ModelForm):
    class Meta:
        model = License
        fields = LICENSE_FIELDS
        labels = {
            "plan_name": "Plan name",
            "kind": "Kind",
            "start_date": "Start date",
            "end_date": "End date",
            "committed_amount": "Committed amount",
            "seat_count": "Seats",
        }
        help_texts = {
            "plan_name": "As on the contract or invoice, e.g. “Enterprise 2026”.",
            "end_date": "Leave empty for an open-ended plan.",
            "committed_amount": "For a usage commitment: the amount committed over the period.",
            "currency": "ISO 4217 code, e.g. USD, EUR.",
            "seat_count": "For a seat-based plan: the number of seats bought.",
        }
        widgets = {
            "plan_name": _text(),
            "kind": forms.RadioSelect,
            "start_date": forms.DateInput(attrs={"type": "date"}),
            "end_date": forms.DateInput(attrs={"type": "date"}),
            "currency": _text({"maxlength": 3, "size": 4, "class": "uppercase"}),  # a class: the CSP forbids style=
        }

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = self.instance.workspace = workspace
        application = cast(forms.ModelChoiceField, self.fields["application"])
        application.queryset = workspace.applications.order_by("name")
        application.empty_label = "Choose an application…"
        cast(forms.ChoiceField, self.fields["kind"]).choices = License.Kind.choices  # no blank radio button
        self.fields["currency"].required = False
        bound_license_dates(self)

    def clean_currency(self) -> str:
        currency = (self.cleaned_data.get("currency") or "").strip().upper()
        if currency and not CURRENCY_RE.match(currency):
            raise forms.ValidationError("Use a three-letter currency code, e.g. USD.")
        return currency

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        check_license_period(self, data)
        kind = data.get("kind")
        if kind == License.Kind.COMMITMENT:
            if data.get("committed_amount") is None:
                self.add_error("committed_amount", "A usage commitment needs the committed amount.")
            if not data.get("currency") and "currency" not in self.errors:
                self.add_error("currency", "A usage commitment needs its currency.")
        if kind == License.Kind.SEATS and not data.get("seat_count"):
            self.add_error("seat_count", "A seat-based plan needs the number of seats.")
        if data.get("committed_amount") is not None and data["committed_amount"] < 0:
            self.add_error("committed_amount", "The amount cannot be negative.")
        if not data.get("currency") and "currency" not in self.errors:
            data["currency"] = "USD"  # the model's default; only a commitment must name it
        return data


class AttributionRuleForm(forms.ModelForm):
    """A rule: provider + patterns → an existing application, or a new one named here."""

    new_application = forms.CharField(
        label="New application name",
        required=False,
        max_length=120,
        widget=_text({"placeholder": "e.g. Support chatbot"}),
        help_text="Or type a name to create the application with this rule.",
    )
    license = forms.TypedChoiceField(label="License", required=False, coerce=int, empty_value=None)

    class Meta:
        model = AttributionRule
        fields = ["provider", *RULE_PATTERN_FIELDS, "application", "priority"]
        labels = {"priority": "Priority"}
        help_texts = {
            "priority": "Lower runs first; rules with equal priority run oldest first. Default rules use 1000."
        }

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = self.instance.workspace = workspace
        choices = sorted(((slug, p.name) for slug, p in PROVIDERS.items()), key=lambda c: c[1].lower())
        current = self.instance.provider if self.instance.pk else ""
        if current and current not in PROVIDERS:
            choices.append((current, current))  # keep a rule of a provider no longer installed editable
        self.fields["provider"] = forms.ChoiceField(label="Provider", choices=[("", "Choose a provider…"), *choices])
        for name in RULE_PATTERN_FIELDS:
            field = self.fields[name]
            field.label = PATTERN_LABELS.get(name, name.capitalize())
            field.help_text = PATTERN_HELP[name]
            field.widget = _text({"placeholder": "any"})
        application = cast(forms.ModelChoiceField, self.fields["application"])
        application.queryset = workspace.applications.order_by("name")
        application.required = False
        application.empty_label = "Choose an application…"
        licenses: dict[str, list[tuple[int, str]]] = {}
        for lic in workspace.licenses.select_related("application").order_by("application__name", "plan_name", "pk"):
            licenses.setdefault(lic.application.name, []).append(
                (lic.pk, f"{lic.plan_name} ({lic.get_kind_display()})")
            )
        cast(forms.ChoiceField, self.fields["license"]).choices = [("", "No license"), *licenses.items()]
        self.fields[
            "license"
        ].help_text = "Optional: the plan this usage counts against. It must belong to the application."
        if self.instance.pk and self.instance.license_id:
            self.initial.setdefault("license", self.instance.license_id)

    def pattern_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in RULE_PATTERN_FIELDS]

    def clean_label(self) -> str:
        text = (self.cleaned_data.get("label") or "").strip()
        try:
            parse_label_pattern(text)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        return text

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        application, new_name = data.get("application"), (data.get("new_application") or "").strip()
        if application and new_name:
            self.add_error("new_application", "Choose an application or type a new name, not both.")
        elif not application and not new_name and "application" not in self.errors:
            self.add_error("application", "Choose the application this usage belongs to, or name a new one.")
        license_id = data.get("license")
        self.license_obj: License | None = None
        if license_id is not None:
            self.license_obj = self.workspace.licenses.filter(pk=license_id).first()
            if self.license_obj is None:
                self.add_error("license", "Choose one of the licenses listed.")
            elif new_name or (application and self.license_obj.application_id != application.pk):
                self.add_error("license", "This license belongs to another application.")
        return data

    def save(self, commit: bool = True) -> AttributionRule:
        """The rule, unsaved: services.attribution_rule_save stores it and re-attributes."""
        rule = super().save(commit=False)
        rule.license = self.license_obj
        return rule

    @property
    def new_application_name(self) -> str:
        return (self.cleaned_data.get("new_application") or "").strip()


class UsageFilterForm(DateRangeForm):
    """Filters of the usage table; the selects list the values actually stored. Dates are
    bounded as everywhere (usage.forms.DateRangeForm): a refused one filters nothing."""

    model = forms.ChoiceField(label="Model", required=False)
    project = forms.ChoiceField(label="Project", required=False)
    metric = forms.ChoiceField(label="Metric", required=False)

    def __init__(self, *args: Any, choices: dict[str, list[str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, values in choices.items():
            cast(forms.ChoiceField, self.fields[name]).choices = [("", "All")] + [(v, v) for v in values]


class UsageImportForm(forms.Form):
    """Upload of a usage CSV (usage/importer.py checks its content; this only takes the file)."""

    FORMAT_CHOICES = (
        ("auto", "Detect from the header"),
        ("doow", "Doow export columns"),
        ("authress", "Authress portal: date, resource, operation, calls"),
    )

    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8 CSV with a header line. A file with any problem stores nothing.",
        widget=forms.FileInput(attrs={"accept": ".csv,text/csv"}),
    )
    format = forms.ChoiceField(label="Format", choices=FORMAT_CHOICES, initial="auto", required=False)

    def clean_format(self) -> str:
        return self.cleaned_data.get("format") or "auto"
