"""Concurrent saves: the row lock makes a stale save wait, then refuse (also run on PostgreSQL)."""

import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from settings_app.forms import MailServerForm
from settings_app.models import MailServerConfig
from settings_app.saving import VersionConflict, save_settings
from tests.factories import smtp_basic_post

pytestmark = [pytest.mark.db_sensitive, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def config_row():
    MailServerConfig.ensure_row()  # transactional tests flush the migration's row


def valid_form(**overrides) -> MailServerForm:
    form = MailServerForm(smtp_basic_post(**overrides), stored=MailServerConfig.load())
    assert form.is_valid(), form.errors
    return form


def test_a_save_waits_for_a_concurrent_save_and_then_refuses_the_stale_form():
    user = get_user_model().objects.create_superuser("admin", password="pw-123456")
    stale = valid_form(server_name="second.example.com", version="0")
    locked = threading.Event()
    outcome = {}

    def first_save():
        try:
            with transaction.atomic():
                config = MailServerConfig.objects.select_for_update().get(pk=1)
                locked.set()
                time.sleep(0.5)  # hold the lock while the second save starts
                config.server_name = "first.example.com"
                config.version += 1
                config.save()
        finally:
            connection.close()

    def second_save():
        locked.wait(5)
        try:
            save_settings(stale, user=user, source_ip=None)
            outcome["second"] = "saved"
        except VersionConflict:
            outcome["second"] = "conflict"
        finally:
            connection.close()

    threads = [threading.Thread(target=first_save), threading.Thread(target=second_save)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)

    assert outcome == {"second": "conflict"}
    assert MailServerConfig.load().server_name == "first.example.com"


def test_two_saves_from_the_same_version_save_exactly_once():
    user = get_user_model().objects.create_superuser("admin", password="pw-123456")
    forms = [valid_form(server_name=f"host{n}.example.com", version="0") for n in range(2)]
    barrier = threading.Barrier(2)
    results = []

    def save(form):
        barrier.wait(5)
        try:
            save_settings(form, user=user, source_ip=None)
            results.append("saved")
        except VersionConflict:
            results.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=save, args=(form,)) for form in forms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert sorted(results) == ["conflict", "saved"]
    assert MailServerConfig.load().version == 1
