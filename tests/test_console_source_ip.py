"""The audit's source address behind the documented reverse proxy, and never a spoofed one."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from settings_app.models import AuditEntry
from tests.factories import PAGE_URL, smtp_basic_post
from tests.oauth_helpers import authorize_microsoft

ROOT = Path(__file__).resolve().parent.parent
PROXY = "10.0.0.5"

pytestmark = pytest.mark.django_db


def audited_ip(client, **meta) -> str | None:
    response = client.post(PAGE_URL, smtp_basic_post(), **meta)
    assert response.status_code == 302
    return AuditEntry.objects.get().source_ip


@pytest.fixture
def behind_proxy(settings):
    settings.MAILCONFIG_TRUSTED_PROXIES = ["10.0.0.0/24", "2001:db8:feed::/48"]


def test_without_trusted_proxies_the_header_is_ignored(admin_client):
    meta = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "203.0.113.7"}
    assert audited_ip(admin_client, **meta) == PROXY


def test_behind_a_trusted_proxy_the_client_it_saw_is_audited(admin_client, behind_proxy):
    meta = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "203.0.113.7"}
    assert audited_ip(admin_client, **meta) == "203.0.113.7"


def test_a_chain_of_trusted_proxies_is_followed_to_the_client(admin_client, behind_proxy):
    meta = {"REMOTE_ADDR": "2001:db8:feed::1", "HTTP_X_FORWARDED_FOR": "203.0.113.7, 10.0.0.6"}
    assert audited_ip(admin_client, **meta) == "203.0.113.7"


def test_an_address_the_client_wrote_itself_is_not_believed(admin_client, behind_proxy):
    # The client sent "X-Forwarded-For: 10.0.0.9, 192.0.2.1"; the proxy appended what it saw.
    meta = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "10.0.0.9, 192.0.2.1, 203.0.113.7"}
    assert audited_ip(admin_client, **meta) == "203.0.113.7"


def test_an_untrusted_client_cannot_spoof_its_address(admin_client, behind_proxy):
    meta = {"REMOTE_ADDR": "198.51.100.9", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}
    assert audited_ip(admin_client, **meta) == "198.51.100.9"


@pytest.mark.parametrize(
    ("header", "audited"),
    [
        ("not-an-address", PROXY),
        ("", PROXY),
        ("203.0.113.7:51234", "203.0.113.7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
    ],
)
def test_odd_headers_from_a_trusted_proxy(admin_client, behind_proxy, header, audited):
    meta = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": header}
    assert audited_ip(admin_client, **meta) == audited


def test_a_mistyped_trusted_proxy_stops_start_up_with_the_fix(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailconfig.settings",
        "MAILCONFIG_DATA_DIR": str(tmp_path),
        "DJANGO_TRUSTED_PROXIES": "10.0.0.5, proxy.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "DJANGO_TRUSTED_PROXIES: 'proxy.example.com' is not an IP address or network" in (
        result.stderr
    )


def test_an_oauth_authorization_is_audited_with_the_clients_address(
    admin_client, behind_proxy, microsoft_fake, ca_file
):
    admin_client.defaults.update(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.7")
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    entry = AuditEntry.objects.filter(action__startswith="Authorized OAuth").get()
    assert entry.source_ip == "198.51.100.7"
