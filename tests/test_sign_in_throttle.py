"""Sign-in: throttled per username and address, and per address; logged; clear when locked out."""

import logging
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.factories import PAGE_URL

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/django-admin/login/"
RIGHT = "right-Password-4821"
WRONG = "CanaryWrong-77"
ADDRESS_LIMIT = 20  # MAILCONFIG_LOGIN_ADDRESS_FAILURE_LIMIT's default


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_superuser("admin", password=RIGHT)


def sign_in(client, username="admin", password=RIGHT, path=LOGIN, **extra):
    return client.post(path, {"username": username, "password": password}, **extra)


def fail(client, times, **kwargs):
    return [sign_in(client, password=WRONG, **kwargs).status_code for _ in range(times)]


def signed_in(client) -> bool:
    return client.get(PAGE_URL).status_code == 200


def sign_in_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "settings_app.sign_in"]


def test_a_right_password_signs_in(client, admin):
    assert sign_in(client).status_code == 302 and signed_in(client)


def test_five_wrong_passwords_lock_the_username_even_for_the_right_password(client, admin):
    assert fail(client, 5) == [200, 200, 200, 200, 429]
    response = sign_in(client)
    assert response.status_code == 429
    assert not signed_in(client)


def test_the_locked_out_page_says_what_happened_but_not_when_to_try_again(client, admin):
    fail(client, 5)
    response = sign_in(client)
    body = response.content.decode()
    assert response.status_code == 429
    assert "Sign-in blocked" in body and "too many failed sign-ins" in body
    # An attacker who learns when the lock ends knows when to lock again.
    moments = [timezone.now() + timedelta(minutes=15, seconds=s) for s in range(-60, 61, 30)]
    assert not any(timezone.localtime(m).strftime("%H:%M") in body for m in moments)
    assert "minute" not in body
    assert "Traceback" not in body and WRONG not in body and RIGHT not in body
    assert 'name="username"' in body and 'value="admin"' in body  # the form is still there


def test_the_lock_ends_after_the_cool_off(client, admin, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    fail(client, 5)
    from axes.models import AccessAttempt  # make the failures older than the cool-off

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=2))
    assert sign_in(client).status_code == 302


def test_failures_from_one_address_do_not_lock_the_admin_out_from_another(client, admin):
    assert fail(client, 5, REMOTE_ADDR="192.0.2.66")[-1] == 429
    assert sign_in(client, REMOTE_ADDR="192.0.2.66").status_code == 429
    assert sign_in(client, REMOTE_ADDR="198.51.100.9").status_code == 302


def test_a_username_tried_from_many_addresses_is_not_locked_anywhere(client, admin):
    for n in range(10):
        sign_in(client, password=WRONG, REMOTE_ADDR=f"192.0.2.{n + 1}")
    assert sign_in(client, REMOTE_ADDR="198.51.100.9").status_code == 302


def test_an_address_guessing_many_usernames_is_locked_for_every_username(client, admin):
    for n in range(ADDRESS_LIMIT - 1):
        sign_in(client, username=f"guess{n}", password=WRONG, REMOTE_ADDR="192.0.2.7")
    assert (
        sign_in(client, username="guess-last", password=WRONG, REMOTE_ADDR="192.0.2.7").status_code
        == 429
    )
    assert sign_in(client, REMOTE_ADDR="192.0.2.7").status_code == 429
    assert sign_in(client, REMOTE_ADDR="192.0.2.8").status_code == 302


def test_fewer_failures_than_the_address_limit_over_usernames_lock_nothing(client, admin):
    for n in range(ADDRESS_LIMIT - 1):
        sign_in(client, username=f"guess{n}", password=WRONG, REMOTE_ADDR="192.0.2.7")
    assert sign_in(client, REMOTE_ADDR="192.0.2.7").status_code == 302


def test_the_address_limit_is_a_setting(client, admin, settings):
    settings.MAILCONFIG_LOGIN_ADDRESS_FAILURE_LIMIT = 3
    for n in range(3):
        sign_in(client, username=f"guess{n}", password=WRONG, REMOTE_ADDR="192.0.2.7")
    assert sign_in(client, REMOTE_ADDR="192.0.2.7").status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_client_is_locked_not_the_proxy(
    client, admin, settings
):
    settings.MAILCONFIG_TRUSTED_PROXIES = ["10.0.0.5"]
    via_proxy = {"REMOTE_ADDR": "10.0.0.5"}
    for n in range(ADDRESS_LIMIT):
        sign_in(client, f"guess{n}", WRONG, HTTP_X_FORWARDED_FOR="203.0.113.5", **via_proxy)
    assert sign_in(client, HTTP_X_FORWARDED_FOR="203.0.113.5", **via_proxy).status_code == 429
    assert sign_in(client, HTTP_X_FORWARDED_FOR="203.0.113.6", **via_proxy).status_code == 302


def test_a_forged_forwarded_header_does_not_escape_the_address_lock(client, admin):
    # No trusted proxies: X-Forwarded-For is the client's own writing.
    for n in range(ADDRESS_LIMIT):
        sign_in(client, f"guess{n}", WRONG, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    assert sign_in(client, HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 429


def test_djangos_admin_sign_in_is_throttled_too(client, admin):
    assert fail(client, 5, path=ADMIN_LOGIN)[-1] == 429
    response = sign_in(client, path=ADMIN_LOGIN)
    assert response.status_code == 429 and "Sign-in blocked" in response.content.decode()
    assert sign_in(client, path=LOGIN).status_code == 429  # one count for both pages


def test_failed_and_successful_sign_ins_are_logged_without_the_password(client, admin, caplog):
    caplog.set_level(logging.INFO, logger="settings_app.sign_in")
    sign_in(client, password=WRONG, REMOTE_ADDR="192.0.2.44")
    sign_in(client, REMOTE_ADDR="192.0.2.44")
    assert sign_in_lines(caplog) == [
        "Sign-in failed: user 'admin' from 192.0.2.44 (/accounts/login/).",
        "Sign-in succeeded: user 'admin' from 192.0.2.44 (/accounts/login/).",
    ]
    assert WRONG not in caplog.text and RIGHT not in caplog.text


def test_a_refused_sign_in_during_a_lockout_is_logged_as_such(client, admin, caplog):
    caplog.set_level(logging.INFO, logger="settings_app.sign_in")
    fail(client, 5)
    assert sign_in_lines(caplog)[-1].startswith("Sign-in failed, now locked out: user 'admin'")
    caplog.clear()
    sign_in(client)
    (line,) = sign_in_lines(caplog)
    assert line.startswith("Sign-in refused, locked out after too many failures: user 'admin'")
    assert RIGHT not in caplog.text


def test_the_first_admin_password_must_pass_the_password_validators(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a")
    with pytest.raises(CommandError) as refused:
        call_command("ensure_admin")
    assert "DJANGO_SUPERUSER_PASSWORD is not accepted" in str(refused.value)
    assert "too short" in str(refused.value)
    assert not get_user_model().objects.exists()


def test_djangos_admin_sign_in_does_not_lock_the_admin_out_from_elsewhere(client, admin):
    assert fail(client, 5, path=ADMIN_LOGIN, REMOTE_ADDR="192.0.2.66")[-1] == 429
    assert sign_in(client, path=ADMIN_LOGIN, REMOTE_ADDR="198.51.100.9").status_code == 302
