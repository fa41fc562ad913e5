"""Fuzzing the Mail Server form: whatever is posted, the answer is a page, never a 500."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import PAGE_URL, smtp_basic_post

pytestmark = pytest.mark.django_db

FIELDS = [
    "mode", "server_name", "port", "security", "auth", "username", "password", "from_address",
    "admin_address", "oauth_provider", "oauth_tenant_id", "oauth_client_id", "oauth_client_secret",
    "oauth_azure_environment", "google_client_id", "google_client_secret", "api_provider",
    "api_tenant_id", "api_client_id", "api_client_secret", "api_azure_environment", "version",
    "clear_password",
]  # fmt: skip

# Postgres and form encoding cannot carry NUL; browsers never send it either.
text = st.one_of(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
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


@FUZZ
@given(overrides=st.dictionaries(st.sampled_from(FIELDS), text, max_size=8))
def test_random_field_values_never_cause_a_server_error(admin_client, overrides):
    response = admin_client.post(PAGE_URL, smtp_basic_post(**overrides))
    assert response.status_code in (200, 302, 409)


@FUZZ
@given(
    content=st.binary(max_size=70_000),
    name=st.text(min_size=1, max_size=50).filter(lambda n: "\x00" not in n),
)
def test_random_key_uploads_never_cause_a_server_error(admin_client, content, name):
    upload = SimpleUploadedFile(name.replace("/", "_") or "k", content, "application/octet-stream")
    data = smtp_basic_post(mode="api", api_provider="google", service_account_key=upload)
    response = admin_client.post(PAGE_URL, data)
    assert response.status_code in (200, 302)
