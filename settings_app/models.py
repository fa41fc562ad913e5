"""The stored mail server configuration (one record) and its audit history."""

from __future__ import annotations

import datetime
from typing import Any, cast

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.text import capfirst

from .fields import EncryptedTextField, encrypted_field_names


class Mode(models.TextChoices):
    SMTP = "smtp", "SMTP"
    API = "api", "API"


class Security(models.TextChoices):
    SSL = "ssl", "SSL"
    TLS = "tls", "TLS"
    NONE = "none", "None"


class Auth(models.TextChoices):
    BASIC = "basic", "Basic"
    OAUTH = "oauth", "OAuth"


class SignIn(models.TextChoices):
    """How SMTP OAuth with Microsoft gets its token."""

    DELEGATED = "delegated", "Delegated (an account signs in)"
    APPLICATION = "application", "Application (no sign-in)"


class Provider(models.TextChoices):
    MICROSOFT = "microsoft", "Microsoft"
    GOOGLE = "google", "Google"


class Connection(models.TextChoices):
    """Which stored configuration: the primary one, or the backup that takes over when it fails."""

    PRIMARY = "primary", "Primary"
    BACKUP = "backup", "Backup"


# The console page that edits each connection: its URL name (pages, alert mails, the
# expiry radar and the OAuth views link to it) and its title.
CONNECTION_PAGES: dict[str, str] = {
    Connection.PRIMARY: "settings_app:mail_server",
    Connection.BACKUP: "settings_app:backup_connection",
}
CONNECTION_PAGE_TITLES: dict[str, str] = {
    Connection.PRIMARY: "Mail Server",
    Connection.BACKUP: "Backup Connection",
}


class CredentialType(models.TextChoices):
    """How an Azure app proves who it is to the Microsoft identity platform."""

    SECRET = "secret", "Client Secret"
    CERTIFICATE = "certificate", "Certificate"


# The usual port for each connection security, suggested when it changes.
DEFAULT_PORTS: dict[str, int] = {Security.SSL: 465, Security.TLS: 587, Security.NONE: 25}


class MailServerConfig(models.Model):
    """Every field of both modes in one record, so switching mode loses nothing.

    Two records at most: the primary connection (``SINGLETON_ID``) and the backup
    (``BACKUP_ID``), edited on the Mail Server and Backup Connection pages with the
    same form and the same rules.
    """

    SINGLETON_ID = 1
    BACKUP_ID = 2
    ROW_IDS: dict[str, int] = {Connection.PRIMARY: SINGLETON_ID, Connection.BACKUP: BACKUP_ID}

    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.SMTP)

    # SMTP
    server_name = models.CharField("Server Name or IP", max_length=255, blank=True)
    port = models.PositiveIntegerField("Port Number", null=True, blank=True)
    security = models.CharField(
        "Connection Security", max_length=8, choices=Security.choices, default=Security.TLS
    )
    auth = models.CharField(
        "Authentication", max_length=8, choices=Auth.choices, default=Auth.BASIC
    )
    username = models.CharField(max_length=320, blank=True)
    password = EncryptedTextField(blank=True)

    # SMTP with OAuth
    oauth_provider = models.CharField(
        "Mail Provider", max_length=16, choices=Provider.choices, default=Provider.MICROSOFT
    )
    oauth_tenant_id = models.CharField("Tenant ID", max_length=255, blank=True)
    oauth_client_id = models.CharField("Client ID", max_length=64, blank=True)
    oauth_client_secret = EncryptedTextField("Client Secret", blank=True)
    # Not secret: typed by the admin from Entra ID, read by the expiry radar.
    oauth_client_secret_expires_on = models.DateField("Secret expires on", null=True, blank=True)
    oauth_azure_environment = models.CharField("Azure environment", max_length=32, default="azure")
    oauth_sign_in = models.CharField(
        "Sign-in", max_length=16, choices=SignIn.choices, default=SignIn.DELEGATED
    )
    # Sign-in: Application only (a delegated sign-in exchanges its code with the secret).
    oauth_credential_type = models.CharField(
        "Credential", max_length=16, choices=CredentialType.choices, default=CredentialType.SECRET
    )
    # As api_certificate: key + certificate as one PEM, encrypted, never shown back.
    oauth_certificate = EncryptedTextField("Certificate", blank=True)
    oauth_certificate_subject = models.CharField(max_length=512, blank=True)
    oauth_certificate_thumbprint = models.CharField(max_length=40, blank=True)
    oauth_certificate_thumbprint_sha256 = models.CharField(max_length=64, blank=True)
    oauth_certificate_expires_at = models.DateTimeField(null=True, blank=True)
    google_client_id = models.CharField("Client ID", max_length=255, blank=True)
    google_client_secret = EncryptedTextField("Client Secret", blank=True)

    # Both modes
    from_address = models.CharField("From Address", max_length=254, blank=True)
    admin_address = models.CharField("Admin Mail Address", max_length=254, blank=True)

    # API
    api_provider = models.CharField(
        "Mail Provider", max_length=16, choices=Provider.choices, default=Provider.MICROSOFT
    )
    api_tenant_id = models.CharField("Tenant ID", max_length=255, blank=True)
    api_client_id = models.CharField("Client ID", max_length=64, blank=True)
    api_credential_type = models.CharField(
        "Credential", max_length=16, choices=CredentialType.choices, default=CredentialType.SECRET
    )
    api_client_secret = EncryptedTextField("Client Secret", blank=True)
    api_client_secret_expires_on = models.DateField("Secret expires on", null=True, blank=True)
    # The private key and its certificate as one normalised PEM (key unencrypted, then
    # the certificate), encrypted like every secret and never shown back.
    api_certificate = EncryptedTextField("Certificate", blank=True)
    # Not secret: read from the certificate at upload, shown on the page and to the radar.
    api_certificate_subject = models.CharField(max_length=512, blank=True)
    api_certificate_thumbprint = models.CharField(max_length=40, blank=True)  # SHA-1, as Entra ID
    api_certificate_thumbprint_sha256 = models.CharField(max_length=64, blank=True)
    api_certificate_expires_at = models.DateTimeField(null=True, blank=True)
    api_azure_environment = models.CharField("Azure environment", max_length=32, default="azure")
    service_account_key = EncryptedTextField("JSON Private Key", blank=True)
    # Not secret: shown so the admin can set up domain-wide delegation.
    service_account_email = models.CharField(max_length=320, blank=True)
    service_account_client_id = models.CharField(max_length=64, blank=True)

    # Only meaningful on the backup record: whether the sender fails over to it.
    use_when_primary_fails = models.BooleanField(
        "Use the backup connection when the primary fails", default=False
    )

    version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(null=True, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        permissions = [("change_mail_server", "Can change mail server settings")]

    def __str__(self) -> str:
        return f"Mail server configuration ({self.connection}) v{self.version}"

    @classmethod
    def load(cls, connection: str = Connection.PRIMARY) -> MailServerConfig:
        """The connection's stored record, or an unsaved blank one (version 0) when none
        exists yet."""
        pk = cls.ROW_IDS[Connection(connection)]
        return cls.objects.filter(pk=pk).first() or cls(pk=pk)

    @classmethod
    def ensure_row(cls, connection: str = Connection.PRIMARY) -> None:
        """Make sure the record exists, so a save can lock it (a migration creates the
        primary's; the backup's is created by its first save)."""
        try:
            with transaction.atomic():
                cls.objects.get_or_create(pk=cls.ROW_IDS[Connection(connection)])
        except IntegrityError:
            pass  # created concurrently by another save

    @property
    def connection(self) -> str:
        """Which connection this record is: "primary" or "backup"."""
        return Connection.BACKUP if self.pk == self.BACKUP_ID else Connection.PRIMARY

    @property
    def is_configured(self) -> bool:
        return self.version > 0


# The secrets: every encrypted field of the configuration. Never rendered back to the
# browser, starred in error reports, kept when left blank, named in the audit only.
SECRET_FIELDS = encrypted_field_names(MailServerConfig)


class AuditEntry(models.Model):
    """One save of the configuration: who, when, from where, which fields changed."""

    created_at = models.DateTimeField(auto_now_add=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150)  # kept if the user is deleted
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    version = models.PositiveIntegerField()
    action = models.CharField(max_length=64, default="Saved settings")
    # The configuration the entry is about; each has its own version numbers.
    connection = models.CharField(
        max_length=10, choices=Connection.choices, default=Connection.PRIMARY
    )
    # A save: field labels only; a secret appears as "<label> (changed)", never its value.
    # A Test Mail: its destination, the stored secrets it used, and its result.
    changed_fields = models.JSONField(default=list)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.username} at {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def is_test_mail(self) -> bool:
        return self.action == TEST_MAIL_ACTION

    @property
    def summary(self) -> str:
        """What happened, in one line of the change history (naming the backup connection)."""
        action = self.action
        if self.connection == Connection.BACKUP:
            action = f"Backup connection: {action}"
        if self.is_test_mail:
            return "; ".join([action, *self.changed_fields])
        if self.changed_fields:
            return f"{action}: {', '.join(self.changed_fields)}"
        return f"{action} (no changes)"


TEST_MAIL_ACTION = "Test Mail"


class TestMailRun(models.Model):
    """A Test Mail in progress: one per user at a time, across server processes."""

    __test__ = False  # not a pytest test class

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Test Mail by user {self.user_id} since {self.started_at:%H:%M:%S}"


class ServerCertificateSeen(models.Model):
    """The TLS certificate an SMTP server showed at the last Test Mail or permission check.

    Not secret. The expiry radar reads the row of the saved server, so an admin hears
    about a server certificate running out before mail stops (on a server they may not run).
    """

    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField()
    subject = models.CharField(max_length=512, blank=True)
    not_after = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["host", "port"], name="one_row_per_server")]

    def __str__(self) -> str:
        return f"{self.host}:{self.port} certificate valid until {self.not_after:%Y-%m-%d}"

    @classmethod
    def remember(cls, host: str, port: int, subject: str, not_after: datetime.datetime) -> None:
        """Keep the latest certificate seen for this server (one row per host and port)."""
        cls.objects.update_or_create(
            host=host.lower(),
            port=port,
            defaults={"subject": subject, "not_after": not_after, "seen_at": timezone.now()},
        )


class ExpiryAlert(models.Model):
    """One alert mail about a credential nearing its expiry date, at one threshold.

    The expiry radar's daily check (``settings_app/expiry_alerts.py``) writes one row per
    credential, threshold and expiry date before it sends, so the mail goes once whatever
    the number of workers and checks; a credential with a new expiry date (renewed,
    replaced) has new rows, so its alerts start again.
    """

    class Threshold(models.TextChoices):
        # The expiry radar's severities, in the order they are crossed.
        NOTICE = "notice", "30 days ahead"
        WARNING = "warning", "7 days ahead"
        CRITICAL = "critical", "1 day ahead"
        EXPIRED = "expired", "Expired"

    class Outcome(models.TextChoices):
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Could not be sent"

    # Which credential: "<connection>:<radar key>", e.g. "backup:certificate".
    key = models.CharField(max_length=60)
    threshold = models.CharField(max_length=10, choices=Threshold.choices)
    expires_at = models.DateTimeField()
    what = models.CharField(max_length=300, blank=True)  # the radar's headline when sent
    # When the mail was (last) tried; a failed one is tried again at the next check.
    sent_at = models.DateTimeField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    via = models.CharField(max_length=10, choices=Connection.choices, blank=True)
    note = models.TextField(blank=True)  # "Sent to ...", or why not

    class Meta:
        ordering = ["-sent_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["key", "threshold", "expires_at"], name="one_expiry_alert_per_threshold"
            )
        ]

    def __str__(self) -> str:
        return f"Expiry alert {self.key} {self.threshold} ({self.outcome})"

    @property
    def summary(self) -> str:
        """One line for the page: which threshold, when, and what became of the mail."""
        when = timezone.localtime(self.sent_at).strftime("%Y-%m-%d %H:%M")
        line = f"Alert mail, {self.get_threshold_display().lower()}, {when}: "
        if self.outcome == self.Outcome.SENDING:
            return line + "being sent."
        line += self.note.rstrip(".") + "."
        if self.outcome == self.Outcome.FAILED:
            line += " It is tried again at the next daily check."
        return line


def config_column(name: str) -> models.Field[Any, Any]:
    """A column of ``MailServerConfig``: forms take their labels and limits from it."""
    return cast("models.Field[Any, Any]", MailServerConfig._meta.get_field(name))


def config_label(name: str) -> str:
    """How the page labels a column: its verbose name, capitalised ("Client Secret")."""
    return capfirst(str(config_column(name).verbose_name))
