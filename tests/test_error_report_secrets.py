"""Error reports mailed to the Admin Mail Address never carry a secret someone typed.

Each test makes a real request fail in one place (a middleware before the view,
the view, a template) and reads the real report e-mail that Django's logging
sends through the configured backend (locmem here): text and HTML parts.
"""

from copy import deepcopy

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from settings_app.models import SECRET_FIELDS, MailServerConfig
from tests.factories import smtp_basic_post

pytestmark = pytest.mark.django_db

CANARY = "CanaryPW-123"
STARS = "********************"


def whole_mail(message) -> str:
    """Subject, text and every alternative part (the HTML report) of one mail."""
    parts = [message.subject, message.body] + [body for body, _type in message.alternatives]
    assert len(parts) >= 3, "the report should have an HTML part too"
    return "\n".join(parts)


@pytest.fixture
def failing_client(client, admin_user):
    """A signed-in admin whose failed requests are answered with a 500 and mailed."""
    MailServerConfig.ensure_row()
    MailServerConfig.objects.update(admin_address="alerts@example.com")
    client.force_login(admin_user)
    client.raise_request_exception = False
    return client


@pytest.fixture
def fail_before_the_view(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.faults.FailBeforeTheView"]


def post_with_canaries(**overrides):
    secrets = {name: f"{CANARY}-{name}" for name in SECRET_FIELDS}
    secrets["service_account_key"] = SimpleUploadedFile("key.json", CANARY.encode())
    return smtp_basic_post(**secrets | overrides)


def the_report() -> str:
    (report,) = mail.outbox
    assert report.to == ["alerts@example.com"]
    return whole_mail(report)


def test_a_failure_in_a_middleware_before_the_view_stars_the_typed_secrets(
    failing_client, fail_before_the_view
):
    response = failing_client.post(reverse("settings_app:mail_server"), post_with_canaries())
    assert response.status_code == 500
    report = the_report()
    assert "failed before the view ran" in report
    assert CANARY not in report
    assert f"password = '{STARS}'" in report
    assert "mailer@example.com" in report  # the rest of the form stays readable


def test_a_failure_before_the_sign_in_view_stars_the_login_password(client, fail_before_the_view):
    MailServerConfig.ensure_row()
    MailServerConfig.objects.update(admin_address="alerts@example.com")
    client.raise_request_exception = False
    response = client.post("/accounts/login/", {"username": "admin", "password": CANARY})
    assert response.status_code == 500
    report = the_report()
    assert CANARY not in report and "username = 'admin'" in report


def test_a_failure_in_the_view_stars_the_typed_secrets(failing_client, settings):
    # An operator's settings override that lacks the hosts: the view fails on the form.
    settings.MAILCONFIG_AZURE_ENVIRONMENTS = {"azure": {"label": "Azure Cloud"}}
    response = failing_client.post(reverse("settings_app:mail_server"), post_with_canaries())
    assert response.status_code == 500
    report = the_report()
    assert "AzureEnvironment" in report
    assert CANARY not in report


def test_a_failure_in_a_template_stars_the_typed_secrets(failing_client, settings, tmp_path):
    # A page template that fails halfway through rendering the form it was given.
    page = tmp_path / "settings_app" / "mail_server.html"
    page.parent.mkdir()
    page.write_text("{{ form.username }}{{ form.password }}{% url 'no-such-page' %}")
    templates = deepcopy(django_settings.TEMPLATES)
    templates[0]["DIRS"] = [tmp_path, *templates[0]["DIRS"]]
    settings.TEMPLATES = templates
    # An invalid From Address: the page is rendered again with the typed values.
    response = failing_client.post(
        reverse("settings_app:mail_server"), post_with_canaries(from_address="bad")
    )
    assert response.status_code == 500
    report = the_report()
    assert "NoReverseMatch" in report and "no-such-page" in report
    assert CANARY not in report


# The process environment and settings: credentials an operator configured -----------

PROXY_PASSWORD = "ProxyPW-123"
DATABASE_PASSWORD = "DbPW-456"
# What a WSGI server (runserver's, for one) copies from the process environment into
# every request's META.
ENVIRONMENT = {
    "HTTPS_PROXY": f"http://proxyuser:{PROXY_PASSWORD}@proxy.example.com:3128",
    "DATABASE_URL": f"postgresql://dbuser:{DATABASE_PASSWORD}@db.example.com:5432/mail",
    "LANG": "C.UTF-8",
}


def test_an_anonymous_request_s_error_report_leaves_the_environment_out(
    client, fail_before_the_view
):
    MailServerConfig.ensure_row()
    MailServerConfig.objects.update(admin_address="alerts@example.com")
    client.raise_request_exception = False
    response = client.get("/accounts/login/", **ENVIRONMENT)
    assert response.status_code == 500
    report = the_report()
    assert PROXY_PASSWORD not in report and DATABASE_PASSWORD not in report
    assert "HTTPS_PROXY" not in report and "C.UTF-8" not in report
    assert "REQUEST_METHOD" in report and "HTTP_COOKIE" in report  # the request's own


def test_a_url_in_a_header_has_its_userinfo_starred(failing_client, fail_before_the_view):
    failing_client.get("/accounts/login/", HTTP_REFERER=ENVIRONMENT["HTTPS_PROXY"])
    report = the_report()
    assert PROXY_PASSWORD not in report and "proxyuser" not in report
    assert "http://********@proxy.example.com:3128" in report


def test_settings_show_urls_without_userinfo_and_no_unlisted_setting(
    failing_client, fail_before_the_view, settings
):
    settings.STATIC_URL = f"https://cdnuser:{PROXY_PASSWORD}@cdn.example.com/static/"
    settings.MAILCONFIG_ALERT_WEBHOOK_URL = (
        "https://hooks.example.com/services/T0/B0/HookPathSecret"
    )
    settings.ACME_BILLING_ACCOUNT = "acme-opaque-credential"
    failing_client.get("/accounts/login/")
    report = the_report()
    assert PROXY_PASSWORD not in report and "https://********@cdn.example.com/static/" in report
    assert "HookPathSecret" not in report and "acme-opaque-credential" not in report
    assert f"ACME_BILLING_ACCOUNT = '{STARS}'" in report
    assert "MAILCONFIG_TIMEOUT = " in report and "TIME_ZONE = 'UTC'" in report
