"""The page says what the product documentation says: its labels, and help next to each field group."""

import pytest
from django.test.html import Element, parse_html

from tests.factories import PAGE_URL

pytestmark = pytest.mark.django_db

# Admin > General Settings > Mail Server, as the product documentation names things.
DOCUMENTED_LABELS = [
    "Mode",
    "SMTP",
    "API",
    "Server Name or IP",
    "Port Number",
    "From Address",
    "Admin Mail Address",
    "SSL",
    "TLS",
    "None",
    "Basic",
    "OAuth",
    "Username",
    "Password",
    "Mail Provider",
    "Microsoft",
    "Google",
    "Tenant ID",
    "Client ID",
    "Client Secret",
    "Azure Cloud",
    "Choose the appropriate Azure environment",
    "Azure US Government",
    "Azure US Government (DoD)",
    "Azure China (21Vianet)",
    "JSON Private Key",
    "Test Mail",
    "Save Settings",
]
LABELLING_TAGS = {"label", "legend", "button", "option", "a", "strong"}


def text_of(node: Element | str) -> str:
    if isinstance(node, str):
        return node
    return " ".join(text_of(child) for child in node.children).strip()


def walk(node: Element | str):
    if isinstance(node, str):
        return
    yield node
    for child in node.children:
        yield from walk(child)


def page(client) -> Element:
    return parse_html(client.get(PAGE_URL).content.decode())


def section(root: Element, rule: str) -> Element:
    """The block shown for one choice of options (the first with that data-show-if rule)."""
    return next(node for node in walk(root) if dict(node.attributes).get("data-show-if") == rule)


def help_panel(block: Element) -> str:
    """The text of the block's help (both sign-ins' help for SMTP OAuth with Microsoft)."""
    panels = [
        node for node in walk(block) if "help-panel" in dict(node.attributes).get("class", "")
    ]
    assert panels
    return " ".join(" ".join(text_of(panel).split()) for panel in panels)


def test_every_documented_label_is_on_the_page_exactly(admin_client):
    labels = {
        " ".join(text_of(node).split())
        for node in walk(page(admin_client))
        if node.name in LABELLING_TAGS
    }
    missing = [label for label in DOCUMENTED_LABELS if label not in labels]
    assert not missing


def test_azure_cloud_is_the_default_environment(admin_client):
    root = page(admin_client)
    for rule in (
        "mode=smtp&auth=oauth&oauth_provider=microsoft",
        "mode=api&api_provider=microsoft",
    ):
        (shown,) = [
            node
            for node in walk(section(root, rule))
            if "data-azure-label" in dict(node.attributes)
        ]
        assert text_of(shown) == "Azure Cloud"


@pytest.mark.parametrize(
    ("rule", "fields", "must_name"),
    [
        (
            "mode=smtp&auth=oauth&oauth_provider=microsoft",
            ["oauth_tenant_id", "oauth_client_id", "oauth_client_secret"],
            ["Delegated permissions", "SMTP.Send", "offline_access", "Grant admin consent"],
        ),
        (
            "mode=smtp&auth=oauth&oauth_provider=microsoft",
            ["oauth_sign_in", "oauth_tenant_id", "oauth_client_id", "oauth_client_secret"],
            ["SMTP.SendAsApp", "New-ServicePrincipal", "Add-MailboxPermission", "FullAccess"],
        ),
        (
            "mode=smtp&auth=oauth&oauth_provider=google",
            ["google_client_id", "google_client_secret"],
            ["https://mail.google.com/", "OAuth client ID", "Authorized redirect URIs"],
        ),
        (
            "mode=api&api_provider=microsoft",
            ["api_tenant_id", "api_client_id", "api_client_secret"],
            ["Application permissions", "Mail.Send", "Grant admin consent"],
        ),
        (
            "mode=api&api_provider=google",
            ["service_account_key"],
            [
                "https://www.googleapis.com/auth/gmail.send",
                "Domain Wide Delegation",
                "Create new key",
            ],
        ),
    ],
)
def test_each_field_group_has_its_help_naming_the_permissions(
    admin_client, rule, fields, must_name
):
    block = section(page(admin_client), rule)
    names = {dict(node.attributes).get("name") for node in walk(block)}
    assert set(fields) <= names  # the help sits in the same block as the fields it explains
    text = help_panel(block)
    for phrase in must_name:
        assert phrase in text
