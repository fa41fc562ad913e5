"""Store the grant's credentials fingerprint encrypted (it hashes the client secret).

Existing fingerprints are encrypted in place, so stored grants stay valid.
"""

from django.db import migrations
from django.db.models import TextField, Value
from django.db.models.functions import Cast

import settings_app.fields
from settings_app import encryption


def _raw_fingerprints(OAuthGrant):
    # Cast to a plain TextField: reading through the field would try to decrypt.
    rows = OAuthGrant.objects.annotate(raw=Cast("credentials_fingerprint", TextField()))
    return rows.values_list("pk", "raw")


def _write_raw(OAuthGrant, pk, value):
    # A plain Value is written as-is (the field would encrypt once more).
    OAuthGrant.objects.filter(pk=pk).update(
        credentials_fingerprint=Value(value, output_field=TextField())
    )


def encrypt_fingerprints(apps, schema_editor):
    OAuthGrant = apps.get_model("oauth", "OAuthGrant")
    for pk, raw in _raw_fingerprints(OAuthGrant):
        if raw and len(raw) == 64:  # a hex SHA-256 in clear; Fernet tokens are longer
            _write_raw(OAuthGrant, pk, encryption.encrypt(raw))


def decrypt_fingerprints(apps, schema_editor):
    OAuthGrant = apps.get_model("oauth", "OAuthGrant")
    for pk, raw in _raw_fingerprints(OAuthGrant):
        if raw and len(raw) != 64:
            _write_raw(OAuthGrant, pk, encryption.decrypt(raw))


class Migration(migrations.Migration):
    dependencies = [
        ("oauth", "0001_grant_and_requests"),
    ]

    operations = [
        migrations.AlterField(
            model_name="oauthgrant",
            name="credentials_fingerprint",
            field=settings_app.fields.EncryptedTextField(),
        ),
        migrations.RunPython(encrypt_fingerprints, decrypt_fingerprints),
    ]
