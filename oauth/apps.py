from django.apps import AppConfig


class OAuthConfig(AppConfig):
    """OAuth providers, the consent flow, the grant store and token acquisition."""

    name = "oauth"
    verbose_name = "OAuth"
