"""Test Mail: send one real message with the values on the form and record every step."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.utils import timezone

from sender.deadline import time_limit
from sender.errors import MailError
from sender.factory import build_transport
from sender.transcript import Transcript

from .forms import MailServerForm
from .models import MailServerConfig, TestMailRun
from .values import MailSettings

logger = logging.getLogger(__name__)

SUBJECT = "Test Mail from the Mail Console"
STALE_AFTER_TIMEOUTS = 4


class TestAlreadyRunning(Exception):
    """This user already has a Test Mail under way."""

    __test__ = False  # not a pytest test class


@contextmanager
def one_test_per_user(user: AbstractBaseUser) -> Iterator[None]:
    """Refuse a second concurrent Test Mail by the same user (a double click, two tabs)."""
    # The whole test is limited to one timeout (run_test_mail), so a run older than a
    # few timeouts was left by a crashed process: it no longer counts.
    stale = timezone.now() - timedelta(seconds=settings.MAILCONFIG_TIMEOUT * STALE_AFTER_TIMEOUTS)
    TestMailRun.objects.filter(user=user, started_at__lt=stale).delete()
    try:
        with transaction.atomic():
            run = TestMailRun.objects.create(user=user)
    except IntegrityError:
        raise TestAlreadyRunning from None
    try:
        yield
    finally:
        TestMailRun.objects.filter(pk=run.pk).delete()


def build_test_message(config: MailSettings, recipient: str, requested_by: str) -> EmailMessage:
    """The message Test Mail sends."""
    sent_at = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S %Z")
    method = {
        ("smtp", "basic"): f"SMTP ({config.server_name}:{config.port})",
        ("smtp", "oauth"): f"SMTP with OAuth ({config.server_name}:{config.port})",
    }.get((config.mode, config.auth)) or (
        "Gmail API" if config.api_provider == "google" else "Microsoft Graph API"
    )
    body = (
        f"This is a test message from the Mail Console, sent by {requested_by} at {sent_at} "
        f"through {method}.\n\nIf you can read this, the product can send mail with these settings."
    )
    return EmailMessage(SUBJECT, body, from_email=config.from_address, to=[recipient])


def config_secrets(config: MailSettings) -> list[str]:
    """The secrets in a configuration, which the transcript must never show."""
    values = [
        config.password,
        config.oauth_client_secret,
        config.google_client_secret,
        config.api_client_secret,
    ]
    try:
        values.append(config.service_account_info.get("private_key", ""))
    except (ValueError, AttributeError):
        values.append(config.service_account_key)  # not JSON: hide it whole
    return [value for value in values if isinstance(value, str) and value]


def run_test_mail(config: MailSettings, recipient: str, *, requested_by: str) -> Transcript:
    """Send a test message; every step, success or failure, ends up in the transcript.

    The whole test, every step included, is limited to ``MAILCONFIG_TIMEOUT`` seconds:
    the admin is waiting for the answer.
    """
    transcript = Transcript(secrets=config_secrets(config))
    transport = None
    try:
        with time_limit(settings.MAILCONFIG_TIMEOUT):
            try:
                transport = build_transport(config, transcript=transcript)
                transport.open()
                transport.send(build_test_message(config, recipient, requested_by))
            finally:
                if transport is not None:
                    transport.close()
    except MailError:
        pass  # the failing step is in the transcript with its hint
    except Exception:
        # Unknown failures are logged for the operator (no secrets in our exceptions).
        logger.exception("Test Mail failed unexpectedly")
        transcript.fail(
            "Unexpected error",
            MailError(
                "An unexpected error stopped the test.",
                hint="The details are in the server log; please report them.",
            ),
        )
    return transcript


def settings_from_form(form: MailServerForm) -> MailSettings:
    """The values on a valid form as the sender sees them, unsaved: blank secrets are the
    stored ones. Test Mail and Check permissions both take their settings from here."""
    candidate = MailServerConfig.load()  # a copy to apply the form to; never saved here
    form.apply_to(candidate)
    return MailSettings.from_model(candidate)
