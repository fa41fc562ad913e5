"""The expiry radar: each dated credential warns 30, 7 and 1 days ahead, read with an injected clock.

For every source the expiry is fixed and the clock is put 31, 30, 7, 1 and 0 days
before it: nothing at 31, then notice, warning, critical, expired.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from oauth.models import GrantStatus, OAuthGrant
from settings_app.expiry_radar import Severity, expiry_warnings, radar
from settings_app.models import ServerCertificateSeen
from tests.backup_helpers import store_backup
from tests.factories import PAGE_URL, smtp_basic_post, smtp_post, store, user_with_permission
from tests.html import elements
from tests.oauth_helpers import CHECK_URL, G_USER, authorize_google
from tests.test_api_transports import CLIENT_ID, TENANT

pytestmark = pytest.mark.django_db

DAYS_BEFORE = [
    (31, None),
    (30, Severity.NOTICE),
    (7, Severity.WARNING),
    (1, Severity.CRITICAL),
    (0, Severity.EXPIRED),
]
EXPIRES = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
SMTP_OAUTH_MICROSOFT = {
    "mode": "smtp",
    "server_name": "smtp.office365.com",
    "port": 587,
    "security": "tls",
    "auth": "oauth",
    "oauth_provider": "microsoft",
}


def severities(now: datetime) -> dict[str, str | None]:
    return {item.key: item.severity for item in radar(now)}


def store_certificate(expires_at: datetime, **overrides) -> None:
    store(
        **{
            "mode": "api",
            "api_provider": "microsoft",
            "api_credential_type": "certificate",
            "api_certificate_subject": "CN=mail-console",
            "api_certificate_expires_at": expires_at,
        }
        | overrides
    )


def store_grant(provider: str, **values) -> None:
    OAuthGrant.objects.create(
        connection="primary",
        provider=provider,
        account="mailer@contoso.com",
        refresh_token="refresh",
        credentials_fingerprint="fingerprint",
        **values,
    )


@pytest.mark.parametrize(("days", "expected"), DAYS_BEFORE)
def test_the_graph_certificate_warns_30_7_and_1_days_ahead(days, expected):
    store_certificate(EXPIRES)
    assert severities(EXPIRES - timedelta(days=days)) == {"certificate": expected}


@pytest.mark.parametrize(("days", "expected"), DAYS_BEFORE)
def test_the_graph_client_secret_warns_from_its_expiry_date(days, expected):
    store(mode="api", api_provider="microsoft", api_client_secret_expires_on=date(2027, 3, 1))
    expires = timezone.make_aware(datetime(2027, 3, 1))  # the start of that day, console time
    assert severities(expires - timedelta(days=days)) == {"api_client_secret": expected}


@pytest.mark.parametrize(("days", "expected"), DAYS_BEFORE)
def test_the_smtp_oauth_client_secret_warns_from_its_expiry_date(days, expected):
    store(**SMTP_OAUTH_MICROSOFT, oauth_client_secret_expires_on=date(2027, 3, 1))
    expires = timezone.make_aware(datetime(2027, 3, 1))
    assert severities(expires - timedelta(days=days)) == {"oauth_client_secret": expected}


@pytest.mark.parametrize(("days", "expected"), DAYS_BEFORE)
def test_the_smtp_servers_tls_certificate_warns_as_last_seen(days, expected):
    store(mode="smtp", server_name="smtp.example.com", port=587, security="tls")
    ServerCertificateSeen.remember("smtp.example.com", 587, "smtp.example.com", EXPIRES)
    assert severities(EXPIRES - timedelta(days=days)) == {"server_certificate": expected}


@pytest.mark.parametrize(("days", "expected"), DAYS_BEFORE)
def test_a_google_grant_of_a_testing_project_warns_before_its_7_days_end(days, expected):
    store(
        mode="smtp", server_name="smtp.gmail.com", port=587, auth="oauth", oauth_provider="google"
    )
    store_grant("google", refresh_token_expires_at=EXPIRES)
    assert severities(EXPIRES - timedelta(days=days)) == {"grant": expected}


@pytest.mark.parametrize(
    ("days", "expected"),
    # Warned once it has been idle 80 of its 90 days, then at 7 and 1 days left.
    [(31, None), (30, None), (11, None), (10, Severity.NOTICE), *DAYS_BEFORE[2:]],
)
def test_an_idle_microsoft_grant_warns_after_80_of_its_90_days(days, expected):
    store(**SMTP_OAUTH_MICROSOFT)
    last_used = EXPIRES - timedelta(days=90)
    store_grant("microsoft", authorized_at=last_used - timedelta(days=5), refreshed_at=last_used)
    assert severities(EXPIRES - timedelta(days=days)) == {"grant": expected}


def test_a_grant_in_use_is_not_idle():
    store(**SMTP_OAUTH_MICROSOFT)
    now = timezone.now()
    store_grant("microsoft", authorized_at=now - timedelta(days=200), refreshed_at=now)
    assert expiry_warnings(now) == []


def test_an_expired_grant_is_left_to_the_oauth_panel():
    store(**SMTP_OAUTH_MICROSOFT)
    store_grant("microsoft", refreshed_at=EXPIRES - timedelta(days=95), status=GrantStatus.EXPIRED)
    assert radar(EXPIRES) == []


def test_only_the_credential_in_use_is_watched():
    # A certificate is stored, but the app signs in with its client secret.
    store_certificate(EXPIRES, api_credential_type="secret")
    assert radar(EXPIRES) == []


def test_nothing_is_watched_before_the_settings_are_saved():
    assert radar() == []


def test_the_server_certificate_of_another_server_is_not_counted():
    store(mode="smtp", server_name="smtp.example.com", port=587, security="tls")
    ServerCertificateSeen.remember("smtp.example.com", 465, "smtp.example.com", EXPIRES)
    assert radar(EXPIRES) == []


def test_warnings_are_sorted_soonest_first_with_a_link_to_fix_each():
    store(**SMTP_OAUTH_MICROSOFT, oauth_client_secret_expires_on=date(2027, 3, 1))
    ServerCertificateSeen.remember(
        "smtp.office365.com", 587, "outlook.com", EXPIRES - timedelta(days=3)
    )
    items = expiry_warnings(EXPIRES - timedelta(days=5))
    assert [item.key for item in items] == ["server_certificate", "oauth_client_secret"]
    assert [item.link for item in items] == [PAGE_URL + "#smtp-server", PAGE_URL + "#smtp-oauth"]
    assert "Client secrets" in items[1].fix


# -- the banner ----------------------------------------------------------------------------


def test_the_banner_is_on_every_console_page(admin_client):
    store_certificate(timezone.now() + timedelta(hours=12))
    for url in (PAGE_URL, "/no-such-page/"):
        body = admin_client.get(url).content.decode()
        assert elements(body, data_testid="expiry-banner", data_severity="critical"), url
        assert "expires in less than a day" in body


def test_the_banner_is_not_shown_to_users_who_cannot_fix_it(client):
    store_certificate(timezone.now() + timedelta(hours=12))
    client.force_login(get_user_model().objects.create_user("viewer", password="viewer-pass-1"))
    assert "expiry-banner" not in client.get(PAGE_URL).content.decode()


def test_the_banner_is_shown_to_users_given_the_permission(client):
    store_certificate(timezone.now() + timedelta(days=20))
    client.force_login(user_with_permission())
    body = client.get(PAGE_URL).content.decode()
    assert 'data-severity="notice"' in body


def test_the_page_lists_dates_that_are_not_yet_close(admin_client):
    store_certificate(timezone.now() + timedelta(days=200))
    body = admin_client.get(PAGE_URL).content.decode()
    assert "expiry-banner" not in body
    assert elements(body, data_testid="radar-item", data_key="certificate")
    assert "expires in 199 days" in body or "expires in 200 days" in body


def test_the_secret_expiry_date_is_saved_with_help_on_where_entra_shows_it(admin_client):
    data = smtp_basic_post(
        mode="api",
        api_provider="microsoft",
        api_tenant_id=TENANT,
        api_client_id=CLIENT_ID,
        api_client_secret="s3cret-value",
        api_client_secret_expires_on="2027-06-30",
        from_address="mailer@contoso.com",
    )
    assert admin_client.post(PAGE_URL, data).status_code == 302
    body = admin_client.get(PAGE_URL).content.decode()
    assert 'value="2027-06-30"' in body
    assert 'Certificates & secrets > Client secrets, column "Expires"' in body


# -- where the dates come from --------------------------------------------------------------


def test_test_mail_records_the_smtp_servers_certificate_expiry(
    admin_client, smtp_starttls, trust_test_ca
):
    admin_client.post(PAGE_URL + "test-mail/", smtp_post(smtp_starttls))
    seen = ServerCertificateSeen.objects.get()
    assert (seen.host, seen.port) == ("localhost", smtp_starttls.port)
    assert seen.not_after.year == 3000  # trustme's leaf certificates


def test_check_permissions_records_the_smtp_servers_certificate_expiry(
    admin_client, smtp_ssl, trust_test_ca
):
    admin_client.post(PAGE_URL + "check-permissions/", smtp_post(smtp_ssl, security="ssl"))
    assert ServerCertificateSeen.objects.get().port == smtp_ssl.port


def test_a_google_testing_project_is_detected_from_the_token_lifetime(
    admin_client, google_fake, ca_file
):
    google_fake.testing_publishing_status = True
    grant = authorize_google(admin_client, google_fake, ca_file)
    lifetime = grant.refresh_token_expires_at - grant.authorized_at
    assert timedelta(days=6, hours=23) < lifetime <= timedelta(days=7)
    warning = expiry_warnings()[0]
    assert warning.key == "grant" and warning.severity == Severity.WARNING
    assert "consent screen is in Testing" in warning.fix


def test_a_published_google_project_has_no_end_date(admin_client, google_fake, ca_file):
    grant = authorize_google(admin_client, google_fake, ca_file)
    assert grant.refresh_token_expires_at is None
    assert expiry_warnings() == []


def test_invalid_grant_after_the_7_days_says_the_project_is_in_testing(
    admin_client, google_fake, ca_file
):
    google_fake.testing_publishing_status = True
    grant = authorize_google(admin_client, google_fake, ca_file, user=G_USER)
    # Seven days later: Google has dropped the token and the access token has run out.
    google_fake.refresh_tokens.clear()
    OAuthGrant.objects.filter(pk=grant.pk).update(
        refresh_token_expires_at=timezone.now() - timedelta(minutes=1),
        access_token_expires_at=timezone.now() - timedelta(hours=1),
    )
    body = admin_client.post(CHECK_URL, follow=True).content.decode()
    assert "consent screen is in Testing" in body


# -- the backup connection -------------------------------------------------------------------

BACKUP_PAGE_URL = PAGE_URL + "backup/"


def backup_items(now: datetime) -> dict[str, object]:
    return {item.key: item for item in radar(now) if item.connection == "backup"}


def test_the_backups_certificate_is_watched_and_links_to_the_backup_page():
    store(mode="smtp", server_name="smtp.example.com", port=587, security="none")
    store_backup(
        mode="api",
        api_provider="microsoft",
        api_credential_type="certificate",
        api_certificate_subject="CN=backup-console",
        api_certificate_expires_at=EXPIRES,
    )
    (item,) = radar(EXPIRES - timedelta(days=7))
    assert (item.connection, item.key, item.severity) == ("backup", "certificate", "warning")
    assert item.link == BACKUP_PAGE_URL + "#api-credential"
    assert item.headline.startswith("Backup connection: The Azure app's certificate")
    assert "upload it on the Backup Connection page" in item.fix


@pytest.mark.parametrize(("days", "expected"), DAYS_BEFORE)
def test_the_backups_client_secret_warns_from_its_expiry_date(days, expected):
    store_backup(
        mode="api", api_provider="microsoft", api_client_secret_expires_on=date(2027, 3, 1)
    )
    expires = timezone.make_aware(datetime(2027, 3, 1))
    items = backup_items(expires - timedelta(days=days))
    assert items["api_client_secret"].severity == expected
    assert items["api_client_secret"].link == BACKUP_PAGE_URL + "#api-credential"


def test_the_backups_server_certificate_is_watched_beside_the_primarys():
    store(mode="smtp", server_name="smtp.example.com", port=587, security="tls")
    store_backup(mode="smtp", server_name="relay.example.net", port=465, security="ssl")
    ServerCertificateSeen.remember("smtp.example.com", 587, "smtp.example.com", EXPIRES)
    ServerCertificateSeen.remember(
        "relay.example.net", 465, "relay.example.net", EXPIRES - timedelta(days=2)
    )
    items = expiry_warnings(EXPIRES - timedelta(days=5))
    assert [(item.connection, item.key) for item in items] == [
        ("backup", "server_certificate"),
        ("primary", "server_certificate"),
    ]
    assert "relay.example.net:465" in items[0].headline
    assert items[0].link == BACKUP_PAGE_URL + "#smtp-server"
    assert items[1].link == PAGE_URL + "#smtp-server"


def test_the_backups_grant_is_watched_not_the_primarys_for_it():
    store_backup(**SMTP_OAUTH_MICROSOFT)
    last_used = EXPIRES - timedelta(days=90)
    OAuthGrant.objects.create(
        connection="backup",
        provider="microsoft",
        account="backup@contoso.com",
        refresh_token="refresh",
        credentials_fingerprint="fingerprint",
        authorized_at=last_used,
        refreshed_at=last_used,
    )
    item = backup_items(EXPIRES - timedelta(days=1))["grant"]
    assert item.severity == Severity.CRITICAL
    assert "backup@contoso.com" in item.headline
    assert item.link == BACKUP_PAGE_URL + "#smtp-oauth"


def test_a_backup_that_is_not_in_use_is_not_watched():
    # Kept, but never sent through: its expiry stops no mail.
    store_backup(
        use=False,
        mode="api",
        api_provider="microsoft",
        api_client_secret_expires_on=date(2027, 3, 1),
    )
    assert radar(EXPIRES) == []


def test_the_page_says_which_connection_each_date_belongs_to(admin_client):
    store_backup(
        mode="api",
        api_provider="microsoft",
        api_client_secret_expires_on=(timezone.now() + timedelta(days=3)).date(),
    )
    body = admin_client.get(PAGE_URL).content.decode()
    assert elements(body, data_key="api_client_secret", data_connection="backup")
    assert "Backup connection: The Azure app&#x27;s client secret expires in" in body
    assert f'href="{BACKUP_PAGE_URL}#api-credential"' in body
