"""Failure alerts: when delivery stops, an incident opens once (banner, alert mail, webhook)
and closes by itself at the next delivery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from pytest_django.asserts import assertInHTML

from oauth.models import OAuthGrant
from sender.models import Incident, OutboxMessage, Status
from sender.stored import backup_settings
from tests.backup_helpers import store_backup
from tests.factories import PAGE_URL, store_smtp
from tests.oauth_helpers import MS_USER, authorize_microsoft
from tests.outbox_helpers import run_due_tasks, travel

pytestmark = pytest.mark.django_db(transaction=True)

LOG_URL = "/admin/general-settings/mail-server/log/"
REPORT = b"Subject: Report"  # the messages the test servers refuse; the alert is not one
ADMIN = "admin@example.com"


@pytest.fixture(autouse=True)
def schedule(queued_backend, settings):
    settings.MAILCONFIG_RETRY_SCHEDULE = [60.0, 300.0]
    settings.MAILCONFIG_ALERT_AFTER_TRANSIENT_FAILURES = 3


@pytest.fixture
def primary(smtp_starttls, trust_test_ca):
    """The primary connection: SMTP Basic to a local server, Admin Mail Address set."""
    store_smtp(smtp_starttls, admin_address=ADMIN)
    return smtp_starttls


def send_reports(count: int) -> None:
    for number in range(count):
        mail.send_mail(f"Report {number}", "Body", None, [f"user{number}@example.com"])
    run_due_tasks()


def alerts_received(server) -> list:
    return [m for m in server.messages if m.message["Subject"].startswith("Mail is not")]


# The primary's grant is revoked ------------------------------------------------------


@pytest.fixture
def revoked_grant(admin_client, microsoft_fake, smtp_server_factory, ca_file):
    """SMTP OAuth with Microsoft, authorized, then revoked at the provider: the stored access
    token has run out and the refresh answers invalid_grant."""
    server = smtp_server_factory(
        security="starttls",
        token_checker=lambda user, token: (
            user == MS_USER and microsoft_fake.token_is_valid(token, "SMTP.Send")
        ),
    )
    authorize_microsoft(admin_client, microsoft_fake, ca_file, server_port=server.port)
    microsoft_fake.revoke_refresh_tokens()
    OAuthGrant.objects.update(access_token_expires_at=timezone.now() - timedelta(hours=1))
    return server


def test_a_revoked_grant_opens_an_incident_that_asks_to_reconnect(revoked_grant):
    send_reports(1)

    incident = Incident.objects.get()
    assert incident.is_open and incident.cause == Incident.Cause.GRANT
    assert incident.error == "Authorization expired - Reconnect."
    assert "Reconnect" in incident.hint
    assert incident.messages_affected == 1
    assert OutboxMessage.objects.get().status == Status.FAILED


def test_a_revoked_grant_raises_the_banner_with_a_reconnect_link(admin_client, revoked_grant):
    send_reports(1)

    for url in (PAGE_URL, LOG_URL):
        page = admin_client.get(url).content.decode()
        assert 'data-testid="incident-banner"' in page
        assert "Mail is not being delivered" in page
        assert "Authorization expired - Reconnect." in page
        assertInHTML(
            f'<a class="btn btn-sm btn-danger" href="{PAGE_URL}#authorization"'
            ' data-testid="incident-fix">Reconnect</a>',
            page,
        )


def test_without_a_backup_the_alert_is_tried_through_the_failing_primary_and_recorded(
    revoked_grant,
):
    # Until a backup connection is on, the alert can only go through the primary: with the
    # grant revoked it cannot, and the incident says so (the Email Log shows it).
    assert backup_settings() is None
    send_reports(1)

    incident = Incident.objects.get()
    assert incident.alert_mail == Incident.AlertMail.FAILED
    assert incident.alert_connection == "primary"
    assert "Authorization expired" in incident.alert_note
    assert alerts_received(revoked_grant) == []


def turn_on_backup(server) -> bool:
    """Save a backup connection (SMTP Basic to ``server``) and turn it on."""
    store_backup(
        server,
        username="alice@example.com",
        password="s3cret",
        from_address="alice@example.com",
    )
    return backup_settings() is not None


def test_the_alert_goes_out_once_through_the_backup_when_the_grant_is_revoked(
    revoked_grant, smtp_server_factory
):
    backup = smtp_server_factory(security="starttls", users={"alice@example.com": "s3cret"})
    if not turn_on_backup(backup):
        pytest.skip("no backup connection can be saved yet (the Backup Connection page)")
    send_reports(3)

    incident = Incident.objects.get()
    assert incident.alert_mail == Incident.AlertMail.SENT
    assert incident.alert_connection == "backup"
    (alert,) = alerts_received(backup)
    assert alert.rcpt_tos == [ADMIN]
    assert "Authorization expired - Reconnect." in alert.message["Subject"]


def test_the_webhook_receives_one_signed_post_when_the_grant_is_revoked(revoked_grant, webhook):
    send_reports(3)
    run_due_tasks()

    (post,) = webhook.received
    assert post.verified
    assert post.headers["X-Mailconfig-Event"] == "incident.opened"
    body = post.json
    assert body["event"] == "incident.opened"
    assert body["incident"]["cause"] == "grant"
    assert body["incident"]["error"] == "Authorization expired - Reconnect."
    assert body["incident"]["closed_at"] is None


def test_after_reconnecting_the_next_delivery_closes_the_incident_and_the_banner_goes(
    admin_client, revoked_grant, microsoft_fake, ca_file, webhook
):
    send_reports(1)
    authorize_microsoft(admin_client, microsoft_fake, ca_file, server_port=revoked_grant.port)

    mail.send_mail("Welcome", "Body", None, ["bob@example.com"])
    run_due_tasks()

    incident = Incident.objects.get()
    assert not incident.is_open
    assert incident.closed_by.endswith("delivered")
    assert "incident-banner" not in admin_client.get(PAGE_URL).content.decode()
    assert webhook.events() == ["incident.opened", "incident.closed"]
    assert all(post.verified for post in webhook.received)
    assert webhook.received[1].json["incident"]["closed_at"] is not None


# Which failures open an incident -------------------------------------------------------


def test_temporary_failures_open_no_incident_before_the_configured_number(primary):
    primary.injections.data_replies_for = {REPORT: "451 4.3.0 Try again later"}
    send_reports(2)
    assert not Incident.objects.exists()


def test_the_third_temporary_failure_in_a_row_opens_one_incident(primary):
    primary.injections.data_replies_for = {REPORT: "451 4.3.0 Try again later"}
    send_reports(3)

    incident = Incident.objects.get()
    assert incident.cause == Incident.Cause.TRANSIENT
    assert incident.error_code == "451"
    assert incident.messages_affected == 3


def test_the_number_of_temporary_failures_is_configurable(primary, settings):
    settings.MAILCONFIG_ALERT_AFTER_TRANSIENT_FAILURES = 5
    primary.injections.data_replies_for = {REPORT: "451 4.3.0 Try again later"}
    send_reports(4)
    assert not Incident.objects.exists()
    send_reports(1)
    assert Incident.objects.count() == 1


def test_a_delivery_between_temporary_failures_starts_the_count_again(primary):
    primary.injections.data_replies_for = {REPORT: "451 4.3.0 Try again later"}
    send_reports(2)
    mail.send_mail("Welcome", "Body", None, ["bob@example.com"])
    run_due_tasks()
    send_reports(2)
    assert not Incident.objects.exists()


def test_a_permanent_failure_opens_an_incident_at_once(primary):
    primary.injections.data_replies_for = {REPORT: "554 5.7.1 Message refused"}
    send_reports(1)
    incident = Incident.objects.get()
    assert incident.cause == Incident.Cause.PERMANENT and incident.error_code == "554"


def test_a_refused_recipient_is_the_messages_problem_and_opens_no_incident(primary):
    primary.injections.rcpt_replies = {"user0@example.com": "550 5.1.1 No such user"}
    send_reports(1)
    assert OutboxMessage.objects.get().status == Status.FAILED
    assert not Incident.objects.exists()


# One incident, one alert ---------------------------------------------------------------


def test_an_alert_never_repeats_a_refused_sign_in(admin_client, primary, webhook):
    # With no backup, the alert could only go through the primary, whose server just
    # refused the credentials: trying would be a second failed sign-in for one message.
    primary.injections.auth_reply = "535 5.7.3 Authentication unsuccessful"
    send_reports(1)
    run_due_tasks()

    assert primary.auth_commands == 1
    incident = Incident.objects.get()
    assert incident.alert_mail == Incident.AlertMail.FAILED
    assert incident.alert_connection == "primary"
    assert incident.alert_note.startswith("Not sent: The primary connection's last attempt")
    assert "The server rejected the sign-in" in incident.alert_note
    assert webhook.events() == ["incident.opened"]
    assert 'data-testid="incident-banner"' in admin_client.get(PAGE_URL).content.decode()


def test_a_refused_sign_in_on_the_primary_sends_the_alert_through_the_backup(
    primary, smtp_server_factory
):
    backup = smtp_server_factory(security="starttls", users={"alice@example.com": "s3cret"})
    assert turn_on_backup(backup)
    primary.injections.auth_reply = "535 5.7.3 Authentication unsuccessful"
    send_reports(1)  # refused by the primary, delivered by the backup

    assert primary.auth_commands == 1
    assert Incident.objects.get(connection="primary").alert_connection == "backup"
    (alert,) = alerts_received(backup)
    assert "The server rejected the sign-in" in alert.message["Subject"]


def test_many_failed_messages_make_one_incident_and_one_alert_mail(primary, webhook):
    primary.injections.data_replies_for = {REPORT: "554 5.7.1 Message refused"}
    send_reports(10)
    run_due_tasks()

    incident = Incident.objects.get()
    assert incident.failures == 10 and incident.messages_affected == 10
    (alert,) = alerts_received(primary)  # through the primary: no backup is on
    assert alert.rcpt_tos == [ADMIN]
    assert incident.alert_mail == Incident.AlertMail.SENT
    assert incident.alert_connection == "primary"
    assert webhook.events() == ["incident.opened"]


def test_the_alert_says_since_when_what_failed_what_to_do_and_where(primary):
    primary.injections.data_replies_for = {REPORT: "554 5.7.1 Message refused"}
    send_reports(1)

    (alert,) = alerts_received(primary)
    body = alert.message.get_payload(decode=True).decode()
    assert "not being delivered through the primary connection since" in body
    assert "Cause: Permanent failure" in body
    assert "Last error:" in body and "[554]" in body
    assert f"Check the settings: {PAGE_URL}" in body
    assert f"Email Log: {LOG_URL}" in body


def test_the_alert_links_to_the_public_address_of_the_console(primary, settings):
    settings.MAILCONFIG_PUBLIC_URL = "https://mail.example.com"
    primary.injections.data_replies_for = {REPORT: "554 5.7.1 Message refused"}
    send_reports(1)
    (alert,) = alerts_received(primary)
    assert f"https://mail.example.com{LOG_URL}" in alert.message.get_payload(decode=True).decode()


def test_retries_of_one_message_count_it_once(primary):
    primary.injections.data_replies_for = {REPORT: "451 4.3.0 Try again later"}
    send_reports(3)
    travel(61 * 1.2 + 1)
    run_due_tasks()  # each of the three is tried a second time, and fails again
    incident = Incident.objects.get()
    assert incident.failures == 6
    assert incident.messages_affected == 3


def test_a_delivery_closes_the_incident_and_a_new_failure_opens_a_new_one(primary):
    primary.injections.data_replies_for = {REPORT: "554 5.7.1 Message refused"}
    send_reports(1)
    mail.send_mail("Welcome", "Body", None, ["bob@example.com"])
    run_due_tasks()
    send_reports(1)

    newer, older = Incident.objects.all()
    assert older.closed_at is not None and newer.is_open
    assert len(alerts_received(primary)) == 2


# Pages ---------------------------------------------------------------------------------


def test_the_banner_is_not_shown_when_mail_is_delivered(admin_client, primary):
    send_reports(2)
    assert OutboxMessage.objects.filter(status=Status.SENT).count() == 2
    assert "incident-banner" not in admin_client.get(PAGE_URL).content.decode()


def test_the_banner_after_temporary_failures_points_to_the_email_log(admin_client, primary):
    primary.injections.data_replies_for = {REPORT: "451 4.3.0 Try again later"}
    send_reports(3)
    page = admin_client.get(PAGE_URL).content.decode()
    assertInHTML(
        f'<a class="btn btn-sm btn-danger" href="{LOG_URL}"'
        ' data-testid="incident-fix">Open the Email Log</a>',
        page,
    )
    assert "3 messages affected" in page


def test_the_email_log_shows_the_last_20_incidents_newest_first(admin_client):
    now = timezone.now()
    for number in range(25):
        opened = now - timedelta(hours=25 - number)
        Incident.objects.create(
            cause=Incident.Cause.PERMANENT,
            failing_since=opened,
            opened_at=opened,
            closed_at=opened + timedelta(minutes=5),
            closed_by="Message delivered",
            last_failure_at=opened,
            error=f"Failure number {number}",
            messages_affected=number,
        )

    page = admin_client.get(LOG_URL).content.decode()

    assert page.count('data-testid="incident-row"') == 20
    assert "Failure number 24" in page and "Failure number 5" in page
    assert "Failure number 4<" not in page
    assert page.index("Failure number 24") < page.index("Failure number 23")


def test_the_email_log_shows_an_incidents_cause_times_and_messages_affected(admin_client, primary):
    primary.injections.data_replies_for = {REPORT: "554 5.7.1 Message refused"}
    send_reports(2)

    page = admin_client.get(LOG_URL).content.decode()
    incident = Incident.objects.get()
    assert 'data-testid="incident-row"' in page
    assert "Permanent failure" in page
    assert f'data-label="Messages affected">{incident.messages_affected}<' in page
    assert ">Open</span>" in page
    assert "Sent <span" in page  # the alert mail, through the primary


def test_only_one_incident_per_connection_can_be_open(primary):
    from django.db import IntegrityError, transaction

    now = timezone.now()
    values = {
        "cause": Incident.Cause.PERMANENT,
        "failing_since": now,
        "opened_at": now,
        "last_failure_at": now,
    }
    Incident.objects.create(**values)
    with pytest.raises(IntegrityError), transaction.atomic():
        Incident.objects.create(**values)
