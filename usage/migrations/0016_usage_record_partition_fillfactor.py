"""The usage table's partitions leave 30% of each page free (usage.partitions.FILLFACTOR), so a
restated quantity is a HOT update. New partitions are created with it; this sets the existing
ones. Rows already stored keep their pages as they are (only new writes leave the room)."""
from django.db import migrations


def forwards(apps, schema_editor):
    from usage.partitions import FILLFACTOR, set_fillfactor

    set_fillfactor(schema_editor.connection.alias, FILLFACTOR)


def backwards(apps, schema_editor):
    from usage.partitions import set_fillfactor

    set_fillfactor(schema_editor.connection.alias, 100)


class Migration(migrations.Migration):

    dependencies = [
        ("usage", "0015_usage_daily_narrow_rollup"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=True)]
