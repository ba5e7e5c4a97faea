"""Notification.numbers: the alert's numbers at that change, structured (the page's facts and its
explorer link come from it, no longer from parsing the body). Earlier notifications get them
from their body's "name: value" lines."""

from django.db import migrations, models


def numbers_from_body(apps, schema_editor):
    Notification = apps.get_model("alerts", "Notification")
    changed = []
    for note in Notification.objects.filter(numbers={}).exclude(body="").only("pk", "body").iterator():
        pairs = (line.partition(": ") for line in note.body.splitlines())
        note.numbers = {name.replace(" ", "_"): value for name, sep, value in pairs if sep}
        changed.append(note)
    Notification.objects.bulk_update(changed, ["numbers"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_squashed_0003"),
    ]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="numbers",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(numbers_from_body, migrations.RunPython.noop, elidable=True),
    ]
