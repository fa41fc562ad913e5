# See sender 0006: the expiry alerts' table comes here, the health check schedule's goes.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("settings_app", "0009_labels_on_the_model"),
        ("sender", "0006_models_live_with_their_users"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ExpiryAlert",
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
                        ("key", models.CharField(max_length=60)),
                        (
                            "threshold",
                            models.CharField(
                                choices=[
                                    ("notice", "30 days ahead"),
                                    ("warning", "7 days ahead"),
                                    ("critical", "1 day ahead"),
                                    ("expired", "Expired"),
                                ],
                                max_length=10,
                            ),
                        ),
                        ("expires_at", models.DateTimeField()),
                        ("what", models.CharField(blank=True, max_length=300)),
                        ("sent_at", models.DateTimeField()),
                        (
                            "outcome",
                            models.CharField(
                                choices=[
                                    ("sending", "Sending"),
                                    ("sent", "Sent"),
                                    ("failed", "Could not be sent"),
                                ],
                                max_length=10,
                            ),
                        ),
                        (
                            "via",
                            models.CharField(
                                blank=True,
                                choices=[("primary", "Primary"), ("backup", "Backup")],
                                max_length=10,
                            ),
                        ),
                        ("note", models.TextField(blank=True)),
                    ],
                    options={
                        "ordering": ["-sent_at", "-pk"],
                        "db_table": "sender_expiryalert",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("key", "threshold", "expires_at"),
                                name="one_expiry_alert_per_threshold",
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name="expiryalert", table=None),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="HealthCheckSchedule")],
            database_operations=[],
        ),
    ]
