"""A refresh token never shows up in clear: not in pages, logs or the database file.

A canary refresh token goes through real refreshes (Test Mail over SMTP XOAUTH2
against aiosmtpd, and Check) with every logger at DEBUG; then everything the
product wrote is searched for it. Transactional, so the SQLite file really holds
what was written.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from oauth.models import OAuthGrant
from settings_app.models import MailServerConfig
from tests.factories import PAGE_URL
from tests.oauth_helpers import (
    CHECK_URL,
    MS_USER,
    authorize_microsoft,
    microsoft_post,
    xoauth2_server,
)

pytestmark = pytest.mark.django_db(transaction=True)
CANARY = "CANARY-refresh-token-42"
TEST_URL = PAGE_URL + "test-mail/"


def plant_canary(microsoft_fake) -> None:
    """Make the canary the stored refresh token, one the fake accepts as the real one."""
    grant = OAuthGrant.objects.get()
    microsoft_fake.refresh_tokens[CANARY] = microsoft_fake.refresh_tokens[grant.refresh_token]
    grant.refresh_token = CANARY
    grant.access_token_expires_at = timezone.now()  # so the next token comes from a refresh
    grant.save()


def test_canary_refresh_token_never_leaks(
    admin_client, microsoft_fake, ca_file, smtp_server_factory, caplog
):
    caplog.set_level(logging.DEBUG)
    server = xoauth2_server(smtp_server_factory, microsoft_fake, MS_USER, "SMTP.Send")
    authorize_microsoft(admin_client, microsoft_fake, ca_file, server_port=server.port)
    pages = []

    plant_canary(microsoft_fake)
    post = microsoft_post(server.port, oauth_client_secret="")
    test_mail = admin_client.post(TEST_URL, post, HTTP_X_REQUESTED_WITH="fetch")
    pages.append(test_mail.content)
    assert b"Test mail sent" in test_mail.content
    assert server.auth_mechanisms == ["XOAUTH2"]

    plant_canary(microsoft_fake)
    check = admin_client.post(CHECK_URL, follow=True)
    pages.append(check.content)
    assert b"Check passed" in check.content
    assert microsoft_fake.tokens_issued["refresh_token"] == 2  # both with the canary
    pages.append(admin_client.get(PAGE_URL).content)

    plant_canary(microsoft_fake)  # stored once more, to search the database for it
    access_token = OAuthGrant.objects.get().access_token
    for page in pages:
        assert CANARY.encode() not in page
        assert access_token.encode() not in page
    assert CANARY not in caplog.text
    assert access_token not in caplog.text
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM oauth_oauthgrant")
        assert CANARY not in repr(cursor.fetchall())
    if connection.vendor == "sqlite":
        database = Path(connection.settings_dict["NAME"])
        # The database in WAL mode: recent writes are in the -wal file until a checkpoint.
        files = [database.with_name(database.name + suffix) for suffix in ("", "-wal", "-journal")]
        contents = b"".join(path.read_bytes() for path in files if path.exists())
        assert MS_USER.encode() in contents  # the files do hold the grant
        assert CANARY.encode() not in contents
    assert MailServerConfig.load().version == 1  # Test Mail and Check saved nothing
