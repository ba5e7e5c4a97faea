"""Forms of Company Settings → General."""

from __future__ import annotations

from django import forms

from accounts.models import Workspace, time_zone_names


class WorkspaceGeneralForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        label="Time zone",
        choices=(),
        help_text=(
            "Days, weeks and months on every page, in budgets and alerts are calendar periods in this zone; "
            "usage is stored in UTC. Changing it recomputes the daily totals in the background."
        ),
    )

    class Meta:
        model = Workspace
        fields = ["name", "time_zone"]
        labels = {"name": "Company name"}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        names = time_zone_names()
        current = self.instance.time_zone
        choices = [(name, name.replace("_", " ")) for name in names]
        if current and current not in names:  # a zone this machine no longer knows: keep it visible
            choices.insert(0, (current, f"{current} (unknown here)"))
        self.fields["time_zone"].choices = choices  # type: ignore[attr-defined]  # a ChoiceField
