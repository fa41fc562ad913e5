"""Two processes refreshing the SMTP OAuth grant at once keep the newest refresh token.

The provider invalidates a refresh token once used (rotation). Without the row lock,
the second refresh would present the spent token and the grant would be lost.
Also run on PostgreSQL, where SQLite's whole-database lock cannot hide a missing row lock.
"""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from oauth.consent import Tokens
from oauth.grant import StoredGrantTokenProvider, store_grant
from oauth.models import GrantStatus, OAuthGrant
from settings_app.models import MailServerConfig
from settings_app.values import MailSettings
from tests.oauth_helpers import (
    MS_CLIENT,
    MS_TENANT,
    MS_USER,
    register_microsoft,
    save_microsoft_oauth_row,
)

pytestmark = [pytest.mark.db_sensitive, pytest.mark.django_db(transaction=True)]


def test_concurrent_refreshes_keep_the_newest_refresh_token(microsoft_fake):
    register_microsoft(microsoft_fake)
    microsoft_fake.rotate_invalidates_old = True
    microsoft_fake.delays["token"] = 0.3  # both refreshes overlap
    save_microsoft_oauth_row(username=MS_USER)
    config = MailSettings.from_model(MailServerConfig.load())
    # A grant as the consent flow leaves it, with a refresh token the fake knows.
    first = microsoft_fake.issue_user_tokens(
        MS_TENANT, MS_CLIENT, MS_USER, "https://outlook.office.com/SMTP.Send offline_access"
    )
    admin = get_user_model().objects.create_superuser("root", password="pw-12345")
    store_grant(config, Tokens("expired", timezone.now(), first["refresh_token"], MS_USER), admin)

    errors: list[Exception] = []

    def refresh() -> None:
        try:
            StoredGrantTokenProvider(config).get_token(force=True)
        except Exception as err:  # collected for the assertion below
            errors.append(err)
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert errors == []
    grant = OAuthGrant.objects.get()
    assert grant.status == GrantStatus.ACTIVE
    live = [t for t, g in microsoft_fake.refresh_tokens.items() if not g["revoked"]]
    assert live == [grant.refresh_token]  # the stored one is the newest, still valid
    assert microsoft_fake.tokens_issued["refresh_token"] == 2
