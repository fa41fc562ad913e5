"""The expiry radar: every credential date that will stop mail, and how close each one is.

One function, ``radar(now)``, reads the saved configurations (the primary, and the
backup connection when it is in use) and returns what expires and when: the Azure
app's certificate, for Graph or app-only SMTP (read from it at upload), its client
secret (the date the admin typed from Entra ID), the SMTP server's TLS certificate (as
seen at the last Test Mail or permission check) and an SMTP OAuth grant that goes idle
(Microsoft) or runs out (Google, consent screen in Testing). Warnings start 30, 7 and 1
days ahead; the banner on every console page, the Mail Server page and the alert mails
(``settings_app/expiry_alerts.py``) read it.

Only non-secret columns are read (``values()``), so a lost encryption key or a
damaged secret never stops the banner, nor the pages that show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.urls import reverse
from django.utils import timezone

from oauth.models import GrantStatus, OAuthGrant

from .certificates import fact_columns
from .models import (
    CONNECTION_PAGE_TITLES,
    CONNECTION_PAGES,
    Connection,
    MailServerConfig,
    Provider,
    Security,
    ServerCertificateSeen,
)
from .sending_methods import CHOICE_FIELDS, TransportKind, method_for

# Warn this many days ahead; the severity is the nearest threshold crossed.
THRESHOLDS = (30, 7, 1)
# Microsoft refresh tokens expire after 90 days unused; warn once 80 have passed.
MICROSOFT_GRANT_IDLE_LIFETIME = timedelta(days=90)
MICROSOFT_GRANT_IDLE_WARNING = timedelta(days=80)
# Each certificate credential -> the radar's key and link for it, and who uses it.
CERTIFICATES = {
    "api_certificate": ("certificate", "api-credential", "The Azure app's certificate"),
    "oauth_certificate": (
        "oauth_certificate",
        "smtp-credential",
        "The Azure app's certificate for SMTP",
    ),
}
# Each secret with an expiry date the admin types -> that date's field.
SECRET_EXPIRY_DATES = {
    "api_client_secret": "api_client_secret_expires_on",
    "oauth_client_secret": "oauth_client_secret_expires_on",
}


class Severity:
    """How close an expiry is: the threshold it has crossed."""

    NOTICE = "notice"  # within 30 days
    WARNING = "warning"  # within 7 days
    CRITICAL = "critical"  # within 1 day
    EXPIRED = "expired"

    CSS = {NOTICE: "info", WARNING: "warning", CRITICAL: "danger", EXPIRED: "danger"}
    LABELS = {
        NOTICE: "within 30 days",
        WARNING: "within 7 days",
        CRITICAL: "within a day",
        EXPIRED: "expired",
    }


@dataclass(frozen=True)
class Expiry:
    """One dated credential: what it is, when it stops, what to do, and where."""

    key: str
    what: str
    expires_at: datetime
    fix: str
    # Where to fix it: the section (HTML id) of the connection's page.
    anchor: str
    now: datetime
    connection: str = Connection.PRIMARY
    # How far ahead warnings start (an idle Microsoft grant: once 80 of 90 days passed).
    horizon: timedelta = timedelta(days=THRESHOLDS[0])

    @property
    def page(self) -> str:
        """The URL name of the page that sets this credential."""
        return CONNECTION_PAGES[Connection(self.connection)]

    @property
    def link(self) -> str:
        return f"{reverse(self.page)}#{self.anchor}"

    @property
    def alert_key(self) -> str:
        """Which credential this is, across connections: "backup:certificate"."""
        return f"{self.connection}:{self.key}"

    @property
    def remaining(self) -> timedelta:
        return self.expires_at - self.now

    @property
    def severity(self) -> str | None:
        """None while the expiry is further away than the warning horizon."""
        remaining = self.remaining
        if remaining <= timedelta(0):
            return Severity.EXPIRED
        if remaining <= timedelta(days=THRESHOLDS[2]):
            return Severity.CRITICAL
        if remaining <= timedelta(days=THRESHOLDS[1]):
            return Severity.WARNING
        if remaining <= self.horizon:
            return Severity.NOTICE
        return None

    @property
    def css(self) -> str:
        return Severity.CSS.get(self.severity or "", "secondary")

    @property
    def label(self) -> str:
        return Severity.LABELS.get(self.severity or "", "ok")

    @property
    def when(self) -> str:
        """ "expires in 7 days (2026-12-08)", "expired on 2026-12-01"."""
        local = timezone.localtime(self.expires_at)
        remaining = self.remaining
        if remaining <= timedelta(0):
            return f"expired on {local:%Y-%m-%d %H:%M}"
        if remaining < timedelta(days=1):
            return f"expires in less than a day ({local:%Y-%m-%d %H:%M})"
        days = remaining.days
        return f"expires in {days} day{'s' if days != 1 else ''} ({local:%Y-%m-%d})"

    @property
    def headline(self) -> str:
        # The primary's items read as before; the backup's say whose they are.
        prefix = "Backup connection: " if self.connection == Connection.BACKUP else ""
        return f"{prefix}{self.what} {self.when}."


def radar(now: datetime | None = None) -> list[Expiry]:
    """Every dated credential the saved sending methods rely on, soonest first: the
    primary's, and the backup's while it is in use (one that is off never sends)."""
    now = now or timezone.now()
    found = _connection_radar(Connection.PRIMARY, now)
    found += _connection_radar(Connection.BACKUP, now)
    return sorted(found, key=lambda item: item.expires_at)


def _connection_radar(connection: str, now: datetime) -> list[Expiry]:
    config = (
        MailServerConfig.objects.filter(pk=MailServerConfig.ROW_IDS[connection])
        .values(
            *CHOICE_FIELDS,
            "version",
            "server_name",
            "port",
            "security",
            *(
                fact_columns(name)[fact]
                for name in CERTIFICATES
                for fact in ("subject", "not_after")
            ),
            "use_when_primary_fails",
            *SECRET_EXPIRY_DATES.values(),
        )
        .first()
    )
    if not config or not config["version"]:
        return []
    if connection == Connection.BACKUP and not config["use_when_primary_fails"]:
        return []
    method = method_for(lambda name: config[name])
    title = CONNECTION_PAGE_TITLES[connection]
    found: list[Expiry] = []
    for name, (key, anchor, what) in CERTIFICATES.items():
        columns = fact_columns(name)
        if name in method.fields and config[columns["not_after"]]:
            found.append(
                Expiry(
                    key=key,
                    what=f"{what} ({config[columns['subject']]})",
                    expires_at=config[columns["not_after"]],
                    fix="Create a new certificate, add it under App registrations > the app > "
                    f"Certificates & secrets > Certificates, and upload it on the {title} page.",
                    anchor=anchor,
                    now=now,
                    connection=connection,
                )
            )
    for secret, date_field in SECRET_EXPIRY_DATES.items():
        if secret in method.fields and config[date_field]:
            found.append(
                Expiry(
                    key=secret,
                    what="The Azure app's client secret",
                    expires_at=_start_of(config[date_field]),
                    fix="Create a new client secret under App registrations > the app > "
                    "Certificates & secrets > Client secrets, enter its Value and its expiry "
                    f"date on the {title} page, then delete the old one.",
                    anchor="api-credential" if secret.startswith("api") else "smtp-oauth",
                    now=now,
                    connection=connection,
                )
            )
    if method.transport == TransportKind.SMTP and config["security"] != Security.NONE:
        seen = ServerCertificateSeen.objects.filter(
            host=config["server_name"].lower(), port=config["port"] or 0
        ).first()
        if seen is not None:
            found.append(
                Expiry(
                    key="server_certificate",
                    what=f"The TLS certificate of {seen.host}:{seen.port} (seen "
                    f"{timezone.localtime(seen.seen_at):%Y-%m-%d})",
                    expires_at=seen.not_after,
                    fix="Ask whoever runs the mail server to renew its certificate, then run "
                    "Test Mail to see the new one.",
                    anchor="smtp-server",
                    now=now,
                    connection=connection,
                )
            )
    if method.uses_grant:
        found += _grant_expiry(connection, config["oauth_provider"], now)
    return found


def expiry_warnings(now: datetime | None = None) -> list[Expiry]:
    """The radar's entries within their warning horizon (30 days; an idle grant: 10)."""
    return [item for item in radar(now) if item.severity is not None]


def _start_of(day: date) -> datetime:
    # Entra ID shows only a date: count from the start of it, in the console's time zone.
    return timezone.make_aware(datetime.combine(day, time.min))


def _grant_expiry(connection: str, provider: str, now: datetime) -> list[Expiry]:
    grant = (
        OAuthGrant.objects.filter(connection=connection, provider=provider)
        .values("status", "account", "authorized_at", "refreshed_at", "refresh_token_expires_at")
        .first()
    )
    if grant is None or grant["status"] != GrantStatus.ACTIVE:
        return []  # a missing or expired grant is shown on the page already
    account = grant["account"] or "the account"
    if provider == Provider.GOOGLE:
        if not grant["refresh_token_expires_at"]:
            return []
        return [
            Expiry(
                key="grant",
                what=f"The Google authorization of {account}",
                expires_at=grant["refresh_token_expires_at"],
                fix="The Google Cloud project's OAuth consent screen is in Testing, so Google "
                "ends every authorization after 7 days. Publish the app (Google Auth Platform > "
                "Audience > Publish app), then press Reconnect.",
                anchor="smtp-oauth",
                now=now,
                connection=connection,
            )
        ]
    last_used = grant["refreshed_at"] or grant["authorized_at"]
    return [
        Expiry(
            key="grant",
            what=f"The Microsoft authorization of {account}, unused since "
            f"{timezone.localtime(last_used):%Y-%m-%d},",
            expires_at=last_used + MICROSOFT_GRANT_IDLE_LIFETIME,
            fix="Microsoft ends an authorization after 90 days without use, and the console "
            "uses it whenever it sends mail: send a Test Mail (or press Check) to keep it "
            "alive, or Reconnect once it has expired.",
            anchor="smtp-oauth",
            now=now,
            connection=connection,
            horizon=MICROSOFT_GRANT_IDLE_LIFETIME - MICROSOFT_GRANT_IDLE_WARNING,
        )
    ]
