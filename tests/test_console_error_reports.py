"""Error reports never carry the secrets an admin typed.

A 500 e-mails Django's report to ``ADMINS``, which is the stored Admin Mail
Address: the POST values in it must be starred, whatever went wrong.
"""

import sys

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.views.debug import ExceptionReporter

from settings_app.models import MailServerConfig
from settings_app.validators import parse_service_account_key
from tests.factories import smtp_basic_post

pytestmark = pytest.mark.django_db

CANARIES = {
    "password": "canary-password-5e1d",
    "oauth_client_secret": "canary-oauth-secret-77aa",
    "google_client_secret": "canary-google-secret-9c20",
    "api_client_secret": "canary-api-secret-31f4",
}
KEY_CANARY = "canary-private-key-0b6e"
STARS = "********************"
VIEWS = ["settings_app:mail_server", "settings_app:test_mail"]
# The OAuth panel's buttons post the whole page form to these.
OAUTH_VIEWS = ["oauth:start", "oauth:check", "oauth:disconnect"]


def post_with_canaries(**overrides):
    key = SimpleUploadedFile("key.json", KEY_CANARY.encode(), "application/json")
    return smtp_basic_post(**CANARIES, service_account_key=key, **overrides)


def assert_no_canary(text: str) -> None:
    for canary in [*CANARIES.values(), KEY_CANARY]:
        assert canary not in text


def store_admin_address(address: str) -> None:
    MailServerConfig.ensure_row()
    MailServerConfig.objects.update(admin_address=address)


@pytest.mark.parametrize("view", VIEWS + OAUTH_VIEWS)
def test_the_report_of_a_request_stars_every_typed_secret(admin_client, view):
    # An invalid address: both views answer without sending or saving anything.
    response = admin_client.post(reverse(view), post_with_canaries(from_address="bad"))
    request = response.wsgi_request
    try:
        raise RuntimeError("a failure after the secrets were posted")
    except RuntimeError:
        reporter = ExceptionReporter(request, *sys.exc_info(), is_email=True)
    text, html = reporter.get_traceback_text(), reporter.get_traceback_html()
    assert_no_canary(text)
    assert_no_canary(html)
    assert f"password = '{STARS}'" in text
    assert "mailer@example.com" in text  # not everything is starred: the report stays useful


@pytest.mark.parametrize("view", VIEWS)
def test_a_real_server_error_mails_the_admin_without_the_secrets(
    client, admin_user, settings, view
):
    store_admin_address("alerts@example.com")
    # An operator's settings override that lacks the hosts: every form post fails with a 500.
    settings.MAILCONFIG_AZURE_ENVIRONMENTS = {"azure": {"label": "Azure Cloud"}}
    client.force_login(admin_user)
    client.raise_request_exception = False
    response = client.post(reverse(view), post_with_canaries())
    assert response.status_code == 500
    (report,) = mail.outbox
    assert report.to == ["alerts@example.com"]
    bodies = [report.body] + [content for content, _type in report.alternatives]
    for body in bodies:
        assert_no_canary(body)
    assert STARS in report.body


def test_locals_holding_a_key_are_starred_in_reports_that_show_them():
    # The HTML report (Django's debug page, HTML error mails) lists each frame's locals.
    try:
        parse_service_account_key(KEY_CANARY)  # a str, not bytes: fails inside the parser
    except AttributeError:
        reporter = ExceptionReporter(None, *sys.exc_info(), is_email=True)
    assert "parse_service_account_key" in reporter.get_traceback_html()
    assert_no_canary(reporter.get_traceback_html())
