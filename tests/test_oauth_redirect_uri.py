"""The redirect URI on the page, and the warnings when consent could not come back to it."""

from __future__ import annotations

import pytest
from django.urls import set_script_prefix

from tests.factories import PAGE_URL

pytestmark = pytest.mark.django_db

HTTP_WARNING = b'data-testid="redirect-http-warning"'
HOST_WARNING = b'data-testid="redirect-host-warning"'


def test_plain_http_on_another_host_is_warned_about(admin_client):
    page = admin_client.get(PAGE_URL)  # http://testserver, no public URL
    assert b'value="http://testserver/RestAPI/WC/OAuthSetting"' in page.content
    assert HTTP_WARNING in page.content
    assert b"http://localhost:80</code>" in page.content
    assert HOST_WARNING not in page.content


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000"])
def test_plain_http_on_this_machine_is_accepted(admin_client, host):
    page = admin_client.get(PAGE_URL, HTTP_HOST=host)
    assert f'value="http://{host}/RestAPI/WC/OAuthSetting"'.encode() in page.content
    assert HTTP_WARNING not in page.content


def test_https_is_accepted(admin_client):
    page = admin_client.get(PAGE_URL, secure=True)
    assert b'value="https://testserver/RestAPI/WC/OAuthSetting"' in page.content
    assert HTTP_WARNING not in page.content


def test_public_url_on_another_host_is_warned_about(admin_client, settings):
    settings.MAILCONFIG_PUBLIC_URL = "https://console.example.com"
    page = admin_client.get(PAGE_URL)
    assert b'value="https://console.example.com/RestAPI/WC/OAuthSetting"' in page.content
    assert HOST_WARNING in page.content
    assert HTTP_WARNING not in page.content


def test_plain_http_public_url_is_warned_about(admin_client, settings):
    settings.MAILCONFIG_PUBLIC_URL = "http://console.example.com"
    page = admin_client.get(PAGE_URL)
    assert HTTP_WARNING in page.content


def test_redirect_uri_with_context_path_and_public_url(admin_client, settings):
    settings.FORCE_SCRIPT_NAME = "/mailconsole"
    # The WSGI handler sets the prefix from FORCE_SCRIPT_NAME per request; the test client does not.
    set_script_prefix("/mailconsole/")
    try:
        page = admin_client.get(PAGE_URL)
        assert b'value="http://testserver/mailconsole/RestAPI/WC/OAuthSetting"' in page.content
        assert HOST_WARNING not in page.content
        settings.MAILCONFIG_PUBLIC_URL = "https://console.example.com"
        page = admin_client.get(PAGE_URL)
    finally:
        set_script_prefix("/")
    assert (
        b'value="https://console.example.com/mailconsole/RestAPI/WC/OAuthSetting"' in page.content
    )
    assert HOST_WARNING in page.content  # opened as testserver, registered elsewhere
