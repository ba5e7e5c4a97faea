"""Each usage row records the connector stream that wrote it (and the store call that last
wrote it), so a complete re-read can remove the rows it no longer returns.

Rows synced before this change are given the stream their connector writes them under from
now on, so the first re-read of each provider matches (and cleans up) them too. The mapping
is frozen here as the connectors define their streams at the time of writing; it is told
apart by metric and provenance, which is enough because no two streams of one provider write
the same metric with the same provenance. Imported rows keep "" and are never removed.
`store_batch` stays NULL on old rows: it never equals a new store call's, so an old row a
re-read no longer returns is removed like any other.
"""

from __future__ import annotations

from django.db import migrations, models

IMPORTED = "imported"
COST_METRICS = ("cost",)
# provider slug -> [(stream, {field lookups}) ...], first match wins; {} matches every row left.
STREAMS: dict[str, list[tuple[str, dict[str, object]]]] = {
    "openai": [("costs", {"metric__in": COST_METRICS}), ("usage_completions", {})],
    "anthropic": [("cost_report", {"metric__in": COST_METRICS}), ("usage_report", {})],
    "groq": [("rates", {})],
    # Metric estimates are the only derived Fireworks rows; dedicated billing is GPU seconds.
    "fireworks": [
        ("metrics", {"provenance": "derived"}),
        ("billing_dedicated", {"metric": "compute_seconds"}),
        ("billing_serverless", {}),
    ],
    "openrouter": [("activity", {})],
    "replicate": [("predictions", {})],
    "aws_bedrock": [("cloudwatch", {})],
    "azure_openai": [("monitor_metrics", {})],
    "google_vertex": [("billing_export", {})],
}


def name_streams(apps, schema_editor):
    UsageRecord = apps.get_model("usage", "UsageRecord")
    for provider, rules in STREAMS.items():
        for stream, lookups in rules:
            # One UPDATE per rule; rows an earlier rule named are skipped by stream="".
            UsageRecord.objects.filter(provider=provider, stream="").exclude(provenance=IMPORTED).filter(
                **lookups
            ).update(stream=stream)


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0003_default_attribution"),
    ]

    operations = [
        migrations.AddField(
            model_name="usagerecord",
            name="store_batch",
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="usagerecord",
            name="stream",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
        migrations.RunPython(name_streams, migrations.RunPython.noop, elidable=False),
    ]
