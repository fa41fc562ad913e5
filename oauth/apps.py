from django.apps import AppConfig


class OAuthConfig(AppConfig):
    """SMTP OAuth consent: providers, state + PKCE, the callback and the stored grant."""

    name = "oauth"
    verbose_name = "OAuth"

    def ready(self) -> None:
        from sender.tokens import register_grant_tokens

        from .grant import StoredGrantTokenProvider

        register_grant_tokens(StoredGrantTokenProvider)
