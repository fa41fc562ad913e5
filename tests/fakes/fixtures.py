"""Fixtures: the provider fakes, started once per run and reset for each test.

Each function fixture points the Django settings at its fake (authority and Graph
hosts of every Azure cloud; Google's endpoints) and makes outbound TLS trust the
test CA, as an operator would with MAILCONFIG_CA_FILE.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import pytest
import trustme

from .google import GoogleFake
from .microsoft import MicrosoftFake

FakeT = TypeVar("FakeT", MicrosoftFake, GoogleFake)


@pytest.fixture(scope="session")
def microsoft_server(tls_ca: trustme.CA) -> Iterator[MicrosoftFake]:
    with MicrosoftFake(tls_ca) as server:
        yield server


@pytest.fixture(scope="session")
def google_server(tls_ca: trustme.CA) -> Iterator[GoogleFake]:
    with GoogleFake(tls_ca) as server:
        yield server


def point_settings_at(settings, microsoft: MicrosoftFake | None, google: GoogleFake | None) -> None:
    """Override the provider endpoints in Django settings (what tests and the benchmark do)."""
    if microsoft is not None:
        settings.MAILCONFIG_AZURE_ENVIRONMENTS = {
            key: {**row, "authority_host": microsoft.base_url, "graph_host": microsoft.base_url}
            for key, row in settings.MAILCONFIG_AZURE_ENVIRONMENTS.items()
        }
    if google is not None:
        settings.MAILCONFIG_GOOGLE = {
            **settings.MAILCONFIG_GOOGLE,
            "auth_uri": google.auth_uri,
            "token_uri": google.token_uri,
            "revoke_uri": google.revoke_uri,
            "gmail_api": google.base_url,
        }


@pytest.fixture
def microsoft_fake(microsoft_server: MicrosoftFake, settings, trust_test_ca) -> MicrosoftFake:
    point_settings_at(settings, microsoft_server, None)
    return _fresh(microsoft_server)


@pytest.fixture
def google_fake(google_server: GoogleFake, settings, trust_test_ca) -> GoogleFake:
    point_settings_at(settings, None, google_server)
    return _fresh(google_server)


def _fresh(server: FakeT) -> FakeT:
    """The fake without what earlier tests left, and nothing cached that it issued."""
    from oauth import consent
    from sender import client_credentials, service_account

    server.reset()
    # Token providers and MSAL apps are kept per configuration for the process;
    # a fake that was reset no longer knows their tokens.
    client_credentials._graph_token_providers.clear()
    client_credentials._exchange_smtp_token_providers.clear()
    service_account._gmail_token_providers.clear()
    consent._consent_msal_apps.clear()
    return server
