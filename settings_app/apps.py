from django.apps import AppConfig


class SettingsAppConfig(AppConfig):
    """The Mail Server page: the form, saving, stored configuration, secrets and audit."""

    name = "settings_app"
    verbose_name = "Mail server settings"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from sender.schedules import register_schedule

        from . import (
            checks,  # noqa: F401  (registers the system checks)
            expiry_alerts,
        )
        from .sign_in import log_failed_sign_in, log_sign_in

        # The workers run the radar's alert check daily and at start (the sender cannot
        # import the radar, which sits above it: it calls these instead).
        register_schedule(
            "expiry_alert_check",
            expiry_alerts.ensure_scheduled,
            at_worker_start=expiry_alerts.check_at_worker_start,
        )

        user_logged_in.connect(log_sign_in, dispatch_uid="settings_app.log_sign_in")
        user_login_failed.connect(
            log_failed_sign_in, dispatch_uid="settings_app.log_failed_sign_in"
        )
