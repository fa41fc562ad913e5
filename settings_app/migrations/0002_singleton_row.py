"""Create the one configuration row, so every save can lock it (no insert race)."""

from django.db import migrations


def create_row(apps, schema_editor):
    MailServerConfig = apps.get_model("settings_app", "MailServerConfig")
    MailServerConfig.objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("settings_app", "0001_initial")]
    operations = [migrations.RunPython(create_row, migrations.RunPython.noop)]
