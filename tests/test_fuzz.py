"""Fuzzing the Mail Server form and Test Mail: whatever is posted, the answer is a page, never a 500."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import GOOGLE_TOKEN_URI, PAGE_URL, service_account_info, smtp_basic_post
from tests.net import free_port

pytestmark = pytest.mark.django_db

TEST_MAIL_URL = reverse("settings_app:test_mail")
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}

FIELDS = [
    "mode", "server_name", "port", "security", "auth", "username", "password", "from_address",
    "admin_address", "oauth_provider", "oauth_tenant_id", "oauth_client_id", "oauth_client_secret",
    "oauth_azure_environment", "google_client_id", "google_client_secret", "api_provider",
    "api_tenant_id", "api_client_id", "api_client_secret", "api_azure_environment", "version",
    "clear_password", "test_recipient",
]  # fmt: skip
# Test Mail really connects: the server stays 127.0.0.1 (a closed port unless fuzzed),
# so a fuzzed host name never waits on DNS.
TEST_MAIL_FIELDS = [name for name in FIELDS if name != "server_name"]

# Postgres and form encoding cannot carry NUL; browsers never send it either.
text = st.one_of(
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        max_size=300,
    ),
    st.sampled_from(
        [
            "smtp",
            "api",
            "tls",
            "ssl",
            "none",
            "basic",
            "oauth",
            "google",
            "microsoft",
            "0",
            "-1",
            "9" * 30,
        ]
    ),
    st.just("x" * 70_000),
)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# -- structured JSON uploads ------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=50)
    | st.just("y" * 5000),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)


def encode(value: object, ascii_only: bool) -> bytes:
    # ensure_ascii=False writes lone surrogates raw: invalid UTF-8, as a broken file would be.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


KEY_NAMES = st.sampled_from(
    ["type", "client_email", "client_id", "private_key", "private_key_id", "token_uri", "extra"]
)
# json.dumps refuses integers past Python's digit limit, so those documents are written by hand.
raw_documents = st.one_of(
    st.integers(1, 65_536).map(lambda depth: b"[" * depth),
    st.integers(1, 13_000).map(lambda depth: b'{"a":' * depth),
    st.integers(4000, 20_000).map(lambda digits: b"1" * digits),
    st.integers(4000, 20_000).map(lambda digits: b'{"client_id": ' + b"9" * digits + b"}"),
)


def json_documents(token_uri: str) -> st.SearchStrategy[bytes]:
    """Raw documents, any JSON, and real keys (naming ``token_uri``) with fuzzed values."""
    key = service_account_info(token_uri=token_uri)
    shaped = st.dictionaries(KEY_NAMES, json_values, max_size=4).map(lambda fuzzed: key | fuzzed)
    return st.one_of(
        raw_documents,
        st.builds(encode, json_values, st.booleans()),
        st.builds(encode, shaped, st.booleans()),
    )


def key_upload(content: bytes, name: str = "key.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, "application/json")


# -- the settings page ------------------------------------------------------------------


@FUZZ
@given(overrides=st.dictionaries(st.sampled_from(FIELDS), text, max_size=8))
def test_random_field_values_never_cause_a_server_error(admin_client, overrides):
    response = admin_client.post(PAGE_URL, smtp_basic_post(**overrides))
    assert response.status_code in (200, 302, 409)


@FUZZ
@given(
    content=st.binary(max_size=70_000),
    # Names the test client cannot send: NUL, lone surrogates (not encodable), and "."
    # or ".." (Django's UploadedFile refuses them before any request is made; a real
    # multipart upload named so arrives as no file at all).
    name=st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=50).filter(
        lambda n: "\x00" not in n and n.replace("/", "_") not in (".", "..")
    ),
)
def test_random_key_uploads_never_cause_a_server_error(admin_client, content, name):
    upload = SimpleUploadedFile(name.replace("/", "_") or "k", content, "application/octet-stream")
    data = smtp_basic_post(mode="api", api_provider="google", service_account_key=upload)
    response = admin_client.post(PAGE_URL, data)
    assert response.status_code in (200, 302)


@FUZZ
@given(content=json_documents(GOOGLE_TOKEN_URI))
def test_structured_json_key_uploads_never_cause_a_server_error(admin_client, content):
    data = smtp_basic_post(
        mode="api", api_provider="google", service_account_key=key_upload(content)
    )
    response = admin_client.post(PAGE_URL, data)
    assert response.status_code in (200, 302)


# -- Test Mail ----------------------------------------------------------------------------


@pytest.fixture
def closed_port() -> str:
    return str(free_port())


@FUZZ
@given(overrides=st.dictionaries(st.sampled_from(TEST_MAIL_FIELDS), text, max_size=8))
def test_random_test_mail_posts_never_cause_a_server_error(
    admin_client, microsoft_fake, google_fake, closed_port, overrides
):
    data = smtp_basic_post(server_name="127.0.0.1", port=closed_port) | overrides
    response = admin_client.post(TEST_MAIL_URL, data, **FETCH)
    assert response.status_code == 200


@FUZZ
@given(data=st.data())
def test_structured_json_keys_sent_to_test_mail_never_cause_a_server_error(
    admin_client, microsoft_fake, google_fake, data
):
    # Keys name the Google fake's token endpoint, so valid ones get as far as sending.
    content = data.draw(json_documents(google_fake.token_uri))
    post = smtp_basic_post(
        mode="api", api_provider="google", service_account_key=key_upload(content)
    )
    response = admin_client.post(TEST_MAIL_URL, post, **FETCH)
    assert response.status_code == 200
