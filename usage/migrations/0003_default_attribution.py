"""Give every workspace's connected providers their default application and rule, as
connecting one does from now on, and attribute the usage already stored.

Uses the historical models; the registry is read for the vendor's name and category only (a
provider that no longer exists falls back to its slug).
"""
from __future__ import annotations

from django.db import migrations

CATEGORIES = {"ai": "AI provider", "cloud": "Cloud platform"}
DEFAULT_RULE_PRIORITY = 1000  # as usage.services.DEFAULT_RULE_PRIORITY at the time of writing


def _vendor(slug: str) -> tuple[str, str, str]:
    """(application name, vendor, category) for a provider slug."""
    try:
        from integrations.providers.registry import get_provider

        provider = get_provider(slug)
    except LookupError:
        return slug, "", ""
    return provider.vendor or provider.name, provider.vendor, CATEGORIES.get(provider.category, "")


def forwards(apps, schema_editor):
    from usage.attribution import load_matcher, reattribute

    Integration = apps.get_model("integrations", "Integration")
    Application = apps.get_model("usage", "Application")
    AttributionRule = apps.get_model("usage", "AttributionRule")
    UsageRecord = apps.get_model("usage", "UsageRecord")

    pairs = sorted(set(Integration.objects.values_list("workspace_id", "provider")))
    for workspace_id, slug in pairs:
        if AttributionRule.objects.filter(workspace_id=workspace_id, provider=slug, is_default=True).exists():
            continue
        name, vendor, category = _vendor(slug)
        application = Application.objects.filter(workspace_id=workspace_id, name__iexact=name).first()
        if application is None:
            application = Application.objects.create(workspace_id=workspace_id, name=name, vendor=vendor, category=category)
        AttributionRule.objects.create(
            workspace_id=workspace_id,
            provider=slug,
            application=application,
            priority=DEFAULT_RULE_PRIORITY,
            is_default=True,
        )
    for workspace_id in sorted({w for w, _ in pairs}):
        matcher = load_matcher(workspace_id=workspace_id, rules=AttributionRule.objects.all())
        # The rollup table comes later (0006), built from these rows.
        reattribute(UsageRecord.objects.filter(workspace_id=workspace_id), matcher, rollups=False)


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0003_event_category_import"),
        ("usage", "0002_attribution"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
