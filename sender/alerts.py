"""The one alert mail of an incident, to the Admin Mail Address.

Sent at once, not through the outbox: the outbox's connection may be what is broken,
and a queued alert would wait behind the very retries it is about. It goes through
the other connection when there is one (the backup when the primary fails), else
through the failing one anyway (a temporary fault may have passed), limited to
``MAILCONFIG_SEND_TIMEOUT`` for opening and for sending; never through a connection
whose last attempt failed for every message (refused credentials, a missing
permission, TLS, nothing configured), which would only repeat the refusal. Whether it
went, through which connection, and why not, is recorded on the incident for the
Email Log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import get_script_prefix, reverse
from django.utils import timezone

from sender.errors import ConfigurationError, MailError
from sender.models import Connection, Incident
from settings_app.models import CONNECTION_PAGES, MailServerConfig
from settings_app.values import MailSettings

from .backend import EmailBackend
from .stored import backup_settings, current_settings

logger = logging.getLogger(__name__)

CONNECTION_NAMES: dict[str, str] = {Connection.PRIMARY: "primary", Connection.BACKUP: "backup"}


def console_link(url_name: str) -> str:
    """A console page's address for a mail: absolute when ``MAILCONFIG_PUBLIC_URL`` is set."""
    path = reverse(url_name)
    public = settings.MAILCONFIG_PUBLIC_URL
    if not public:
        return path
    base = public.rstrip("/")
    prefix = get_script_prefix().rstrip("/")
    if prefix and base.endswith(prefix):
        path = path[len(prefix) :]  # the public URL already ends with the context path
    return base + path


def alert_route(failing: str) -> tuple[str, MailSettings]:
    """The connection the alert about ``failing`` goes through, and its settings: the
    other connection when there is one, else the failing one. Never a connection whose
    last attempt failed for every message (credentials, permission, TLS, nothing
    configured): the alert would repeat that refusal, and failed sign-ins lock accounts.
    Raises ``ConfigurationError`` (saying why) when no connection is left."""
    other = Connection.BACKUP if failing == Connection.PRIMARY else Connection.PRIMARY
    refused = {
        incident.connection: incident
        for incident in Incident.objects.filter(closed_at__isnull=True, affects_every_message=True)
    }
    unusable: ConfigurationError | None = None
    for connection in (other, failing):
        if connection in refused:
            continue
        try:
            config = _saved(connection)
        except ConfigurationError as error:
            unusable = unusable or error
            continue
        if config is not None:
            return connection, config
    if failing in refused:
        incident = refused[failing]
        name = CONNECTION_NAMES.get(failing, failing)
        raise NoAlertRoute(
            failing,
            f"The {name} connection's last attempt failed for every message "
            f"({incident.error.rstrip('.')}); the alert would only repeat it, and no other connection "
            "is in use.",
            code=incident.error_code,
            hint="The banner and the webhook carry the incident. Fix the connection, or turn "
            "on a Backup Connection so that alerts have another way out.",
        )
    assert unusable is not None
    raise unusable


class NoAlertRoute(ConfigurationError):
    """No connection may carry the alert: ``via`` is the refused one it would have taken."""

    def __init__(self, via: str, message: str, *, code: str, hint: str) -> None:
        super().__init__(message, code=code, hint=hint)
        self.via = via


def _saved(connection: str) -> MailSettings | None:
    """The saved settings of ``connection``: None for a backup not in use; ConfigurationError
    for a primary with nothing saved."""
    if connection == Connection.BACKUP:
        return backup_settings()
    return current_settings()


def build_alert(incident: Incident, config: MailSettings, via: str) -> EmailMessage:
    """The alert message: what failed since when, the last error, its hint, where to fix it."""
    since = timezone.localtime(incident.failing_since).strftime("%Y-%m-%d %H:%M %Z")
    failing = CONNECTION_NAMES.get(incident.connection, incident.connection)
    code = f" [{incident.error_code}]" if incident.error_code else ""
    fix = (
        "Reconnect (authorize the account again)"
        if incident.cause == Incident.Cause.GRANT
        else "Check the settings"
    )
    lines = [
        f"Mail from the Mail Console is not being delivered through the {failing} connection "
        f"since {since}.",
        "",
        f"Cause: {incident.get_cause_display()}",
        f"Last error: {incident.error}{code}",
    ]
    if incident.hint:
        lines.append(f"What to do: {incident.hint}")
    lines += [
        "",
        f"{fix}: {console_link(CONNECTION_PAGES[Connection(incident.connection)])}",
        f"Email Log: {console_link('settings_app:email_log')}",
        "",
        f"This alert was sent through the {CONNECTION_NAMES.get(via, via)} connection. It is "
        "sent once per incident: no other alert follows until mail is delivered again "
        "(the banner on the console's pages goes away then).",
    ]
    subject = f"Mail is not being delivered: {incident.error}"[:150]
    return EmailMessage(subject, "\n".join(lines), from_email=config.from_address)


def admin_address(config: MailSettings) -> str:
    """The Admin Mail Address saved on the Mail Server page (else the sending connection's)."""
    saved = (
        MailServerConfig.objects.filter(pk=MailServerConfig.SINGLETON_ID)
        .values_list("admin_address", flat=True)
        .first()
    )
    return saved or config.admin_address


class AlertNotSent(MailError):
    """An alert mail could not be sent; ``via`` is the connection it was tried through."""

    def __init__(self, error: MailError, via: str) -> None:
        super().__init__(error.message, code=error.code, hint=error.hint)
        self.via = via

    @property
    def note(self) -> str:
        """What the Email Log shows: "Not sent: <why> (<code>)"."""
        return f"Not sent: {self.message}" + (f" ({self.code})" if self.code else "")


def send_alert(about: str, build: Callable[[MailSettings, str], EmailMessage]) -> tuple[str, str]:
    """Send an alert about connection ``about`` now, through ``alert_route``, to the Admin
    Mail Address, within ``MAILCONFIG_SEND_TIMEOUT``; ``build(config, via)`` makes the
    message. Returns (via, recipient); raises ``AlertNotSent``."""
    via = ""
    try:
        via, config = alert_route(about)
        recipient = admin_address(config)
        if not recipient:
            raise ConfigurationError(
                "No Admin Mail Address is saved.",
                hint="Enter an Admin Mail Address on the Mail Server page to receive alerts.",
            )
        message = build(config, via)
        message.to = [recipient]
        backend = EmailBackend(config=config, immediate=True)
        backend.send_messages([message])
    except NoAlertRoute as error:
        raise AlertNotSent(error, error.via) from error
    except MailError as error:
        raise AlertNotSent(error, via) from error
    return via, recipient


def send_alert_mail(incident: Incident) -> bool:
    """Send the incident's alert now and record the outcome on it; True if it was sent."""
    try:
        via, recipient = send_alert(
            incident.connection, lambda config, via: build_alert(incident, config, via)
        )
    except AlertNotSent as error:
        logger.error("The alert mail of incident %s was not sent: %s", incident.pk, error)
        _record(incident, Incident.AlertMail.FAILED, error.via, error.note)
        return False
    _record(incident, Incident.AlertMail.SENT, via, f"Sent to {recipient}")
    return True


def _record(incident: Incident, outcome: str, via: str, note: str) -> None:
    incident.alert_mail, incident.alert_connection, incident.alert_note = outcome, via, note
    Incident.objects.filter(pk=incident.pk).update(
        alert_mail=outcome, alert_connection=via, alert_note=note[:1000]
    )
