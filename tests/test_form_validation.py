"""The Mail Server form: required fields per mode, field formats, nothing saved when invalid."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from settings_app.models import AuditEntry, MailServerConfig
from tests.factories import PAGE_URL, service_account_json, smtp_basic_post

pytestmark = pytest.mark.django_db


def post(client, **overrides):
    return client.post(PAGE_URL, smtp_basic_post(**overrides))


def errors(response) -> dict:
    return response.context["form"].errors


def test_valid_smtp_basic_settings_are_saved(admin_client):
    response = post(admin_client)
    assert response.status_code == 302
    config = MailServerConfig.load()
    assert (config.server_name, config.port, config.security) == ("smtp.example.com", 587, "tls")
    assert config.password == "s3cret-password"
    assert config.version == 1


@pytest.mark.parametrize("field", ["server_name", "port", "from_address", "admin_address"])
def test_smtp_requires(admin_client, field):
    response = post(admin_client, **{field: ""})
    assert field in errors(response)
    assert MailServerConfig.load().version == 0


@pytest.mark.parametrize(
    "host", ["smtp.example.com", "10.0.0.25", "2001:db8::25", "[2001:db8::25]", "mail-1.corp.local"]
)
def test_server_accepts_hostnames_and_ip_addresses(admin_client, host):
    assert post(admin_client, server_name=host).status_code == 302


@pytest.mark.parametrize(
    "host", ["smtp example.com", "-bad.example.com", "999.1.1.1", "a" * 300, "smtp\r\n.x"]
)
def test_server_rejects_invalid_names(admin_client, host):
    assert "server_name" in errors(post(admin_client, server_name=host))


@pytest.mark.parametrize("port", ["0", "65536", "-1", "abc"])
def test_port_must_be_between_1_and_65535(admin_client, port):
    assert "port" in errors(post(admin_client, port=port))


@pytest.mark.parametrize("field", ["from_address", "admin_address"])
@pytest.mark.parametrize(
    "value", ["not-an-address", "a@b.com\r\nBcc: victim@example.com", "a@b.com\n", "\ra@b.com"]
)
def test_addresses_must_be_valid_and_single_line(admin_client, field, value):
    assert field in errors(post(admin_client, **{field: value}))


def test_basic_without_username_and_password_means_no_authentication(admin_client):
    assert post(admin_client, username="", password="").status_code == 302
    assert MailServerConfig.load().username == ""


def test_a_password_needs_a_username(admin_client):
    assert "username" in errors(post(admin_client, username="", password="pw"))


def test_emptying_the_username_keeps_nothing_orphaned_unless_the_password_is_cleared(
    admin_client,
):
    post(admin_client)  # stores mailer@example.com with a password
    response = post(admin_client, username="", password="")
    assert errors(response)["username"] == [
        "Enter the username, or tick Clear the stored password to send without authentication."
    ]
    config = MailServerConfig.load()
    assert (config.username, config.password) == ("mailer@example.com", "s3cret-password")


def test_emptying_the_username_and_clearing_the_password_means_no_authentication(admin_client):
    post(admin_client)
    assert post(admin_client, username="", password="", clear_password="on").status_code == 302
    config = MailServerConfig.load()
    assert (config.username, config.password) == ("", "")


@pytest.mark.parametrize("username", ["mailer@example.com\r\nBcc: x@y.com", "a\nb", "a\rb"])
def test_a_line_break_in_the_username_is_an_error_on_that_field(admin_client, username):
    form = post(admin_client, username=username).context["form"]
    assert form.errors["username"] == ["Line breaks are not allowed here."]
    assert not form.non_field_errors()


def test_invalid_form_keeps_typed_values_but_never_secrets(admin_client):
    response = post(admin_client, port="99999", password="typed-secret-value")
    body = response.content.decode()
    assert "smtp.example.com" in body and "99999" in body
    assert "typed-secret-value" not in body
    assert "secrets are not shown again" in body and "re-enter Password" in body


def microsoft_oauth(**overrides):
    data = {
        "auth": "oauth",
        "oauth_provider": "microsoft",
        "oauth_tenant_id": "contoso.onmicrosoft.com",
        "oauth_client_id": "1b2c3d4e-1111-2222-3333-444455556666",
        "oauth_client_secret": "client-secret-value",
    }
    data.update(overrides)
    return data


def test_microsoft_oauth_settings_are_saved(admin_client):
    assert post(admin_client, **microsoft_oauth()).status_code == 302
    config = MailServerConfig.load()
    assert config.auth == "oauth" and config.oauth_tenant_id == "contoso.onmicrosoft.com"


@pytest.mark.parametrize(
    "tenant", ["0e3b2f1c-1111-2222-3333-444455556666", "contoso.onmicrosoft.com", "contoso.com"]
)
def test_tenant_id_is_a_guid_or_a_domain(admin_client, tenant):
    assert post(admin_client, **microsoft_oauth(oauth_tenant_id=tenant)).status_code == 302


@pytest.mark.parametrize("tenant", ["contoso", "not a tenant", "1234"])
def test_tenant_id_rejects_other_values(admin_client, tenant):
    assert "oauth_tenant_id" in errors(
        post(admin_client, **microsoft_oauth(oauth_tenant_id=tenant))
    )


def test_client_id_must_be_a_guid(admin_client):
    assert "oauth_client_id" in errors(
        post(admin_client, **microsoft_oauth(oauth_client_id="my-app"))
    )


@pytest.mark.parametrize(
    "field", ["username", "oauth_tenant_id", "oauth_client_id", "oauth_client_secret"]
)
def test_microsoft_oauth_requires(admin_client, field):
    assert field in errors(post(admin_client, **microsoft_oauth(**{field: ""})))


def test_google_oauth_client_id_must_be_a_google_client_id(admin_client):
    data = {"auth": "oauth", "oauth_provider": "google", "google_client_secret": "x"}
    bad = post(admin_client, google_client_id="123.example.com", **data)
    assert "google_client_id" in errors(bad)
    good = post(admin_client, google_client_id="123-abc.apps.googleusercontent.com", **data)
    assert good.status_code == 302


def test_inactive_sections_are_not_validated(admin_client):
    # API fields hold garbage, but SMTP mode is chosen: only SMTP is checked.
    assert (
        post(admin_client, api_tenant_id="garbage", api_client_id="also garbage").status_code == 302
    )


def test_api_microsoft_requires_its_fields(admin_client):
    response = post(admin_client, mode="api", server_name="", port="")
    assert {"api_tenant_id", "api_client_id", "api_client_secret"} <= set(errors(response))
    assert "server_name" not in errors(response)


def upload(content: bytes, name: str = "key.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/json")


def api_google_post(key_file):
    return smtp_basic_post(mode="api", api_provider="google", service_account_key=key_file)


def test_service_account_key_is_stored_encrypted_with_its_email_shown(admin_client):
    response = admin_client.post(PAGE_URL, api_google_post(upload(service_account_json())))
    assert response.status_code == 302
    config = MailServerConfig.load()
    assert config.service_account_email == "mailer@mail-console-test.iam.gserviceaccount.com"
    page = admin_client.get(PAGE_URL).content.decode()
    assert "mailer@mail-console-test.iam.gserviceaccount.com" in page
    assert "112233445566778899001" in page
    assert "PRIVATE KEY" not in page


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"x" * (64 * 1024 + 1), "larger than 64 KiB"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"type": "authorized_user"}', "not a service account key"),
        (b'{"type": "service_account", "client_email": "a@b.c"}', "lacks"),
        (service_account_json(token_uri="https://attacker.example/token"), "token_uri"),
        (
            service_account_json(
                private_key="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            ),
            "cannot be read",
        ),
        (bytes(range(256)), "not JSON"),
        (b"[" * 60000, "nests too deeply"),
        (b"1" * 5000, "thousands of digits"),
        (b'{"a": ' + b"9" * 5000 + b"}", "thousands of digits"),
        (service_account_json(client_email="not-an-address"), "client_email"),
        (service_account_json(client_email="a" * 310 + "@example.com"), "client_email"),
        (service_account_json(client_email="a@b.com\r\nBcc: x@y.com"), "client_email"),
        (service_account_json(client_email="a@\ud800.com"), "client_email"),
        (service_account_json(client_id="1" * 65), "client_id"),
        (service_account_json(client_id="12ab"), "client_id"),
        (service_account_json(client_id="\u0661\u0662"), "client_id"),  # Arabic-Indic digits
    ],
)
def test_service_account_key_is_checked_before_it_is_stored(admin_client, content, message):
    response = admin_client.post(PAGE_URL, api_google_post(upload(content)))
    assert response.status_code == 200
    assert message in " ".join(errors(response)["service_account_key"])
    assert MailServerConfig.load().service_account_key == ""


def test_api_google_requires_a_key(admin_client):
    response = admin_client.post(PAGE_URL, smtp_basic_post(mode="api", api_provider="google"))
    assert "service_account_key" in errors(response)


def test_nothing_is_saved_or_audited_when_invalid(admin_client):
    post(admin_client, from_address="bad")
    assert MailServerConfig.load().version == 0
    assert not AuditEntry.objects.exists()


def test_saving_basic_auth_for_exchange_online_warns_with_a_path_to_oauth(admin_client):
    post(admin_client, server_name="smtp.office365.com")
    body = admin_client.get(PAGE_URL).content.decode()
    warning = body[body.index('id="basic-auth-sunset"') :].split("</div>\n</div>")[0]
    assert "hidden" not in warning.split(">")[0]
    assert "end of December 2026" in warning
    assert "Mail through Microsoft 365 will stop" in warning
    assert (
        'data-switch-to="mode=smtp,auth=oauth,oauth_provider=microsoft,oauth_sign_in=delegated"'
        in warning
    )
    assert 'data-switch-to="mode=api,api_provider=microsoft,api_credential_type=secret"' in warning


def test_other_servers_get_no_basic_auth_warning(admin_client):
    post(admin_client)
    body = admin_client.get(PAGE_URL).content.decode()
    # Rendered hidden, for the page's script to show while the admin types a Microsoft host.
    assert 'id="basic-auth-sunset"' in body
    tag = body[body.index('id="basic-auth-sunset"') :].split(">")[0]
    assert "hidden" in tag
    assert "basic-auth-sunset-banner" not in body


# Errors no visible field can show --------------------------------------------------


@pytest.mark.parametrize("version", [None, "garbled", "-1"], ids=["missing", "garbled", "negative"])
def test_a_bad_hidden_version_is_explained_at_the_top(admin_client, version):
    data = smtp_basic_post()
    if version is None:
        del data["version"]
    else:
        data["version"] = version
    body = admin_client.post(PAGE_URL, data).content.decode()
    assert "Nothing was saved." in body
    assert "The page&#x27;s version number" in body and "Reload the page" in body
    assert "Please correct the fields marked below" not in body  # no field is marked
    assert MailServerConfig.load().version == 0


def test_field_errors_still_point_below(admin_client):
    body = post(admin_client, port="99999").content.decode()
    assert "Please correct the fields marked below" in body


def test_a_bad_hidden_version_in_test_mail_is_said_without_a_field_label(admin_client):
    data = smtp_basic_post()
    del data["version"]
    body = admin_client.post(PAGE_URL + "test-mail/", data, HTTP_X_REQUESTED_WITH="fetch")
    text = body.content.decode()
    assert "<li>The page&#x27;s version number was missing" in text
