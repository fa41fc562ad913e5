from django.apps import AppConfig


class SenderConfig(AppConfig):
    """Everything that sends: transports, token providers, the EMAIL_BACKEND."""

    name = "sender"
    verbose_name = "Sender"
