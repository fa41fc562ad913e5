from django.apps import AppConfig


class SettingsAppConfig(AppConfig):
    """The Mail Server page: the form, saving, stored configuration, secrets and audit."""

    name = "settings_app"
    verbose_name = "Mail server settings"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
