from django.apps import AppConfig


class SettingsAppConfig(AppConfig):
    """The Mail Server page: the form, saving, stored configuration, secrets and audit."""

    name = "settings_app"
    verbose_name = "Mail server settings"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from . import checks  # noqa: F401  (registers the system checks)
        from .sign_in import log_failed_sign_in, log_sign_in

        user_logged_in.connect(log_sign_in, dispatch_uid="settings_app.log_sign_in")
        user_login_failed.connect(
            log_failed_sign_in, dispatch_uid="settings_app.log_failed_sign_in"
        )
