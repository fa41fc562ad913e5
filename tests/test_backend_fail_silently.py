"""The queued backend honours ``fail_silently``: an error mail that cannot even be queued
(a read-only database) must not raise out of ``mail_admins()`` or a logging call."""

import logging

import pytest
from django.core import mail
from django.db import DatabaseError

from sender.models import OutboxMessage
from settings_app.models import MailServerConfig
from tests.test_database_faults import read_only_database

pytestmark = [pytest.mark.db_sensitive, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def queued_backend(settings):
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "queued"
    MailServerConfig.ensure_row()
    MailServerConfig.objects.update(admin_address="alerts@example.com")


def test_an_error_logged_while_the_database_is_read_only_does_not_raise(caplog):
    with read_only_database():
        logging.getLogger("django.request").error("Read-only fault seen by a request")
    assert OutboxMessage.objects.count() == 0
    assert "could not be queued" in caplog.text


def test_mail_admins_fails_silently_when_asked(caplog):
    with read_only_database():
        mail.mail_admins("Subject", "Body", fail_silently=True)
    assert "1 message(s) could not be queued" in caplog.text


def test_without_fail_silently_the_database_error_reaches_the_caller():
    with read_only_database(), pytest.raises(DatabaseError):
        mail.send_mail("Subject", "Body", None, ["bob@example.com"])
