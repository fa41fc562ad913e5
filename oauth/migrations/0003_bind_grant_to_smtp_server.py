"""Bind a stored SMTP OAuth grant to the SMTP server it has been sending through.

A grant's fingerprint now covers Server Name, Port and Connection Security
(oauth.consent.GRANT_FIELDS), so its tokens are sent only to that server. A grant
that fits the saved settings is fingerprinted again with the saved server: it stays
active, rather than every deployment having to authorize again.
"""

import hashlib
import json

from django.db import migrations

# GRANT_FIELDS as they were before and after this migration (frozen here on purpose).
BEFORE = {
    "microsoft": (
        "oauth_provider",
        "oauth_tenant_id",
        "oauth_client_id",
        "oauth_client_secret",
        "oauth_azure_environment",
        "username",
    ),
    "google": ("oauth_provider", "google_client_id", "google_client_secret"),
}
SMTP_SERVER = ("server_name", "port", "security")
AFTER = {provider: names + SMTP_SERVER for provider, names in BEFORE.items()}


def _fingerprint(config, names):
    # As settings_app.values.MailSettings.fingerprint computes it.
    payload = json.dumps([getattr(config, name) for name in names], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _refingerprint(apps, old, new):
    OAuthGrant = apps.get_model("oauth", "OAuthGrant")
    MailServerConfig = apps.get_model("settings_app", "MailServerConfig")
    config = MailServerConfig.objects.filter(pk=1).first()
    if config is None:
        return
    for grant in OAuthGrant.objects.all():
        if grant.provider not in old:
            continue
        if grant.credentials_fingerprint == _fingerprint(config, old[grant.provider]):
            OAuthGrant.objects.filter(pk=grant.pk).update(
                credentials_fingerprint=_fingerprint(config, new[grant.provider])
            )


def bind_to_saved_server(apps, schema_editor):
    _refingerprint(apps, BEFORE, AFTER)


def unbind(apps, schema_editor):
    _refingerprint(apps, AFTER, BEFORE)


class Migration(migrations.Migration):
    dependencies = [
        ("oauth", "0002_encrypt_credentials_fingerprint"),
        ("settings_app", "0003_test_mail_run"),
    ]

    operations = [migrations.RunPython(bind_to_saved_server, unbind)]
