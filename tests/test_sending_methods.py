"""Secrets and sending methods are each declared once; the form, page, sender and Test Mail read them."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test.html import parse_html
from django.utils.text import capfirst

from oauth.models import OAuthGrant
from sender.factory import build_transport
from settings_app.fields import EncryptedTextField, encrypted_columns
from settings_app.forms import MailServerForm, clear_field
from settings_app.models import SECRET_FIELDS, MailServerConfig
from settings_app.sending_methods import (
    COMMON_FIELDS,
    METHODS,
    TransportKind,
    show_if,
    show_if_methods,
    show_if_rules,
)
from settings_app.values import MailSettings
from tests.factories import PAGE_URL, smtp_basic_post
from tests.test_console_page_content import walk

ROOT = Path(__file__).resolve().parent.parent
CANARIES = {name: f"CANARY-{name}" for name in SECRET_FIELDS}


# Secrets: the encrypted columns --------------------------------------------------


def test_the_secrets_are_the_configurations_encrypted_columns():
    encrypted = [
        field.name
        for field in MailServerConfig._meta.fields
        if isinstance(field, EncryptedTextField)
    ]
    assert list(SECRET_FIELDS) == encrypted


def test_the_key_commands_find_every_encrypted_column_next_to_the_field():
    columns = dict(encrypted_columns())
    assert columns[MailServerConfig] == list(SECRET_FIELDS)
    assert "refresh_token" in columns[OAuthGrant]


@pytest.mark.django_db
def test_every_secret_has_an_input_never_filled_in_and_a_clear_checkbox():
    MailServerConfig.ensure_row()
    MailServerConfig.objects.update(version=1, **CANARIES)
    form = MailServerForm(stored=MailServerConfig.load())
    for name in SECRET_FIELDS:
        assert name in form.fields and clear_field(name) in form.fields
        assert not form.fields[clear_field(name)].widget.is_hidden  # something to clear
        assert CANARIES[name] not in str(form[name])


def test_a_settings_repr_shows_no_secret():
    text = repr(MailSettings(**CANARIES))
    assert "MailSettings(" in text and "server_name=" in text
    assert "CANARY" not in text


def test_test_mail_and_check_permissions_hide_every_secret():
    # Test Mail's transcript and Check permissions' findings both hide secret_values.
    assert set(CANARIES.values()) <= set(MailSettings(**CANARIES).secret_values)


def test_the_private_key_inside_a_stored_certificate_is_a_secret_of_its_own():
    stored = "-----BEGIN PRIVATE KEY-----\nKEY-CANARY\n-----END PRIVATE KEY-----\n" + (
        "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n"
    )
    for name in ("api_certificate", "oauth_certificate"):
        secrets = MailSettings(**{name: stored}).secret_values
        assert "-----BEGIN PRIVATE KEY-----\nKEY-CANARY\n-----END PRIVATE KEY-----" in secrets


# Sending methods: one declaration ----------------------------------------------


def choices_of(method) -> dict[str, str]:
    return {name: str(value) for name, value in method.when}


@pytest.mark.django_db
@pytest.mark.parametrize("method", METHODS, ids=[m.key for m in METHODS])
def test_the_form_uses_exactly_the_chosen_methods_fields(method):
    form = MailServerForm(smtp_basic_post(**choices_of(method)), stored=MailServerConfig.load())
    assert form.method == method
    assert form.active_fields() == [*COMMON_FIELDS, *method.fields]


@pytest.mark.parametrize("method", METHODS, ids=[m.key for m in METHODS])
def test_the_sender_builds_the_declared_transport(method):
    transport = build_transport(MailSettings(**choices_of(method)))
    expected = {
        TransportKind.SMTP: "SmtpTransport",
        TransportKind.GRAPH: "GraphTransport",
        TransportKind.GMAIL: "GmailTransport",
    }[method.transport]
    assert type(transport).__name__ == expected
    if method.transport == TransportKind.SMTP:  # XOAUTH2 (grant or app-only), or a login
        assert (transport.token_provider is not None) == method.uses_xoauth2


@pytest.mark.parametrize("method", METHODS, ids=[m.key for m in METHODS])
def test_every_secret_a_method_uses_says_where_it_is_sent(method):
    used = {name for name in method.fields if name in SECRET_FIELDS}
    assert set(method.secret_destinations) == used


def test_a_block_shared_by_all_smtp_methods_shows_for_smtp():
    assert show_if("server_name") == "mode=smtp"
    assert show_if("oauth_provider") == "mode=smtp&auth=oauth"


def test_a_block_of_some_methods_shows_for_each_of_them():
    assert show_if("username") == (
        "mode=smtp&auth=basic"
        "|mode=smtp&auth=oauth&oauth_provider=microsoft&oauth_sign_in=delegated"
        "|mode=smtp&auth=oauth&oauth_provider=microsoft&oauth_sign_in=application"
        "&oauth_credential_type=secret"
        "|mode=smtp&auth=oauth&oauth_provider=microsoft&oauth_sign_in=application"
        "&oauth_credential_type=certificate"
    )


def test_a_block_of_the_methods_sharing_some_choices_shows_for_those_choices():
    assert show_if("oauth_credential_type") == (
        "mode=smtp&auth=oauth&oauth_provider=microsoft&oauth_sign_in=application"
    )


@pytest.mark.django_db
def test_every_show_if_rule_on_the_page_comes_from_the_declaration(admin_client):
    root = parse_html(admin_client.get(PAGE_URL).content.decode())
    rules = {
        dict(node.attributes)["data-show-if"]
        for node in walk(root)
        if "data-show-if" in dict(node.attributes)
    }
    declared = set(show_if_rules().values()) | set(show_if_methods().values())
    assert rules and rules <= declared


def test_form_labels_and_limits_come_from_the_model():
    form = MailServerForm(stored=MailServerConfig())
    for name in ("server_name", "from_address", "oauth_tenant_id", "api_client_id", "username"):
        column = MailServerConfig._meta.get_field(name)
        assert form.fields[name].max_length == column.max_length
        assert form.fields[name].label == capfirst(column.verbose_name)
    assert form.fields["security"].label == "Connection Security"
    assert form.fields["api_azure_environment"].label == "Azure environment"
    assert form.fields["password"].label == "Password"
