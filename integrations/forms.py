"""Forms of Company Settings → Integrations, built from what each provider declares.

No form knows any provider: the add, edit and rotate forms are made from the provider's
`credential_fields` and `setting_fields`. Secret fields are PasswordInputs that never render
a value, so a stored (or just typed) secret never travels back to the browser.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from django import forms

from integrations.models import MAX_BACKFILL_DAYS
from integrations.providers.base import FormField, Provider

CREDENTIAL_PREFIX = "credential_"
SETTING_PREFIX = "setting_"

SYNC_INTERVALS: list[tuple[int, str]] = [
    (15, "Every 15 minutes"),
    (30, "Every 30 minutes"),
    (60, "Every hour"),
    (180, "Every 3 hours"),
    (360, "Every 6 hours"),
    (720, "Every 12 hours"),
    (1440, "Once a day"),
]


def _form_field(spec: FormField, *, required: bool | None = None) -> forms.Field:
    attrs: dict[str, Any] = {"spellcheck": "false"}
    placeholder = spec.placeholder or spec.default
    if placeholder:
        attrs["placeholder"] = placeholder
    help_text = spec.help_text
    if spec.default and not spec.required and spec.default not in help_text:
        help_text = f"{help_text} Leave blank for the default ({spec.default}).".strip()
    if spec.secret:
        attrs["autocomplete"] = "new-password"
        widget: forms.Widget = forms.PasswordInput(attrs=attrs, render_value=False)
    else:
        attrs["autocomplete"] = "off"
        widget = forms.TextInput(attrs=attrs)
    field = forms.CharField(
        label=spec.label,
        help_text=help_text,
        required=spec.required if required is None else required,
        widget=widget,
        strip=True,
    )
    field.alternative = spec.alternative  # type: ignore[attr-defined]  # read by _form_fields.html
    return field


class _ProviderForm(forms.Form):
    """Adds one form field per declared credential / setting field of `provider`."""

    with_credential = False
    with_settings = False

    def __init__(self, *args: Any, provider: Provider, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.provider = provider
        if self.with_credential:
            for spec in provider.credential_fields:
                self.fields[CREDENTIAL_PREFIX + spec.name] = _form_field(spec)
        if self.with_settings:
            for spec in provider.setting_fields:
                self.fields[SETTING_PREFIX + spec.name] = _form_field(spec, required=spec.required and not spec.default)

    # Grouped for the template's fieldsets.
    def credential_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith(CREDENTIAL_PREFIX)]

    def setting_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith(SETTING_PREFIX)]

    def credential_values(self) -> dict[str, str]:
        return {
            name.removeprefix(CREDENTIAL_PREFIX): value
            for name, value in self.cleaned_data.items()
            if name.startswith(CREDENTIAL_PREFIX) and value
        }

    def setting_values(self) -> dict[str, str]:
        return {
            name.removeprefix(SETTING_PREFIX): value
            for name, value in self.cleaned_data.items()
            if name.startswith(SETTING_PREFIX) and value
        }

    def add_provider_error(self, error: Exception) -> None:
        """Show a ProviderError (message + hint) above the form; keep typed values, not secrets."""
        self.provider_error = error
        field = getattr(error, "field", "")
        target = next(
            (
                name
                for name in (f"{SETTING_PREFIX}{field}", f"{CREDENTIAL_PREFIX}{field}")
                if field and name in self.fields
            ),
            None,
        )
        self.add_error(target, getattr(error, "message", None) or str(error))


class IntegrationAddForm(_ProviderForm):
    with_credential = True
    with_settings = True
    duplicate_of: list[tuple[str, str]]  # set by the view when the account is connected already

    name = forms.CharField(
        label="Name",
        max_length=120,
        required=False,
        help_text="How this connection is listed. Defaults to the provider's name.",
    )
    split_account = forms.BooleanField(
        label="Read only part of this account",
        required=False,
        help_text="Tick this when another integration already reads this provider account but each reads "
        "a different part of it (different projects, say). Both are then counted, and each page shows the overlap.",
    )

    field_order = ["name"]

    def __init__(self, *args: Any, provider: Provider, **kwargs: Any) -> None:
        super().__init__(*args, provider=provider, **kwargs)
        self.fields[
            "name"
        ].help_text = (
            f"How this connection is listed, e.g. “{provider.name} – production”. Defaults to “{provider.name}”."
        )

    @property
    def offer_split(self) -> bool:
        """The checkbox is shown once the account was found already connected (or was ticked)."""
        return bool(getattr(self, "duplicate_of", None)) or bool(self.data.get("split_account"))


class IntegrationEditForm(_ProviderForm):
    with_settings = True

    name = forms.CharField(label="Name", max_length=120, required=True)
    sync_interval = forms.TypedChoiceField(
        label="Sync",
        coerce=int,
        choices=SYNC_INTERVALS,
        help_text="How often usage is read. The provider's reporting delay still applies.",
    )
    backfill_days = forms.IntegerField(
        label="Backfill (days)",
        min_value=1,
        max_value=MAX_BACKFILL_DAYS,
        help_text="How far back the first sync reads. Changing it later does not re-read older data.",
    )

    field_order = ["name"]

    def __init__(self, *args: Any, provider: Provider, interval: timedelta | None = None, **kwargs: Any) -> None:
        super().__init__(*args, provider=provider, **kwargs)
        if interval is not None:
            minutes = int(interval.total_seconds() // 60)
            choices = list(SYNC_INTERVALS)
            if minutes not in dict(choices):
                # Keep an interval set elsewhere (admin, command) selectable instead of silently changing it.
                choices.append((minutes, f"Every {minutes} minutes"))
                choices.sort()
            cast(forms.ChoiceField, self.fields["sync_interval"]).choices = choices

    def general_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ("name", "sync_interval", "backfill_days")]

    def interval(self) -> timedelta:
        return timedelta(minutes=self.cleaned_data["sync_interval"])


class CredentialRotateForm(_ProviderForm):
    with_credential = True


class DisconnectForm(forms.Form):
    KEEP, DELETE = "keep", "delete"
    data_choice = forms.ChoiceField(
        label="Usage already stored",
        widget=forms.RadioSelect,
        initial=KEEP,
        choices=[
            (KEEP, "Keep it — the integration stays listed as disconnected and its usage stays in reports."),
            (DELETE, "Delete it — remove the integration, its usage rows, sync runs and event log."),
        ],
    )

    @property
    def keep_data(self) -> bool:
        return self.cleaned_data["data_choice"] == self.KEEP
