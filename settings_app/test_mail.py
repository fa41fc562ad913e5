"""Test Mail: send one real message with the values on the form and record every step."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.utils import timezone

from sender import pauses
from sender.deadline import time_limit
from sender.errors import MailError
from sender.factory import build_transport
from sender.transcript import Transcript

from .forms import MailServerForm
from .models import (
    TEST_MAIL_ACTION,
    AuditEntry,
    Connection,
    MailServerConfig,
    TestMailRun,
)
from .sending_methods import TransportKind
from .values import MailSettings

logger = logging.getLogger(__name__)

SUBJECT = "Test Mail from the Mail Console"
STALE_AFTER_TIMEOUTS = 4


class TestAlreadyRunning(Exception):
    """This user already has a Test Mail under way."""

    __test__ = False  # not a pytest test class


@contextmanager
def one_test_per_user(user: User) -> Iterator[None]:
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
    method = config.method.title
    if config.method.transport == TransportKind.SMTP:
        method += f" ({config.server_name}:{config.port})"
    body = (
        f"This is a test message from the Mail Console, sent by {requested_by} at {sent_at} "
        f"through {method}.\n\nIf you can read this, the product can send mail with these settings."
    )
    return EmailMessage(SUBJECT, body, from_email=config.from_address, to=[recipient])


def run_test_mail(config: MailSettings, recipient: str, *, requested_by: str) -> Transcript:
    """Send a test message; every step, success or failure, ends up in the transcript.

    The whole test, every step included, is limited to ``MAILCONFIG_TIMEOUT`` seconds:
    the admin is waiting for the answer.
    """
    transcript = Transcript(secrets=set(config.secret_values))
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
                    # The SMTP server's certificate expiry, for the expiry radar.
                    remember = getattr(transport, "remember_certificate", None)
                    if remember is not None:
                        remember()
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
    if transcript.ok:
        # The server takes these settings now: mail waiting on a refused account goes again.
        pauses.resume(config.connection, "a Test Mail through it succeeded")
    return transcript


def settings_from_form(form: MailServerForm) -> MailSettings:
    """The values on a valid form as the sender sees them, unsaved: blank secrets are the
    stored ones. Test Mail and Check permissions both take their settings from here."""
    # A copy of the form's connection to apply the form to; never saved here.
    candidate = MailServerConfig.load(form.stored.connection)
    form.apply_to(candidate)
    return MailSettings.from_model(candidate)


def describe_outcome(transcript: Transcript, recipient: str) -> str:
    """A Test Mail's result for the change history (never what a server said)."""
    if transcript.ok:
        return f"sent to {recipient}"
    failed = next((step for step in transcript.steps if not step.ok), None)
    if failed is None:
        return f"failed sending to {recipient}"
    code = f" ({failed.code})" if failed.code else ""
    return f"failed at {failed.name}{code} sending to {recipient}"


def record_test_mail(
    user: User,
    *,
    source_ip: str | None,
    version: int,
    destination: str,
    stored_secrets: list[str],
    result: str,
    connection: str = Connection.PRIMARY,
) -> AuditEntry:
    """Audit one Test Mail: who, when, where it went, which stored secrets it used, and how."""
    used = (
        "stored secrets used: " + ", ".join(stored_secrets)
        if stored_secrets
        else "no stored secret used"
    )
    return AuditEntry.objects.create(
        user=user,
        username=user.get_username(),
        source_ip=source_ip,
        version=version,
        action=TEST_MAIL_ACTION,
        connection=connection,
        changed_fields=[f"to {destination}", used, result],
    )
