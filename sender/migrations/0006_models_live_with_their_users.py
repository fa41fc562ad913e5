# The health check's schedule moves here from settings_app (sender/health_check.py reads
# it); the expiry alerts move to settings_app (settings_app/expiry_alerts.py writes them).
# The rows stay: each table is taken over in the state and renamed in the database.
import datetime

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sender", "0005_refused_recipients"),
        ("settings_app", "0009_labels_on_the_model"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="HealthCheckSchedule",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "frequency",
                            models.CharField(
                                choices=[
                                    ("off", "Off"),
                                    ("hourly", "Hourly"),
                                    ("daily", "Daily at"),
                                ],
                                default="off",
                                max_length=8,
                            ),
                        ),
                        (
                            "daily_at",
                            models.TimeField(default=datetime.time(6, 0), verbose_name="Time"),
                        ),
                        (
                            "recipient",
                            models.CharField(blank=True, max_length=254, verbose_name="Send to"),
                        ),
                        ("updated_at", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={"db_table": "settings_app_healthcheckschedule"},
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name="healthcheckschedule", table=None),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ExpiryAlert")],
            database_operations=[],
        ),
    ]
