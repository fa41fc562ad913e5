"""Which fields each way of sending uses, and where its secrets go: declared once.

The choices on the page (Mode, Authentication, Mail Provider) select one sending
method. The form validates and saves that method's fields, the template shows
them (its ``data-show-if`` rules are rendered from here), the sender builds its
transport, and Test Mail sends a stored secret only to the destination it was
saved for. Floor data: imports only the models, so the sender may read it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .models import Auth, CredentialType, Mode, Provider, SignIn

# Used by every method.
COMMON_FIELDS = ("mode", "from_address", "admin_address")
# Where an SMTP login or an XOAUTH2 token is sent.
SMTP_SERVER = ("server_name", "port", "security")
# SMTP OAuth with Microsoft, Sign-in: Delegated (Application: _microsoft_app_fields).
MICROSOFT_OAUTH_FIELDS = (
    "oauth_sign_in",
    "username",
    "oauth_tenant_id",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_client_secret_expires_on",
    "oauth_azure_environment",
)

# The choices selecting SMTP OAuth with Microsoft, Sign-in: Application (no sign-in).
MICROSOFT_APP = (
    ("mode", Mode.SMTP),
    ("auth", Auth.OAUTH),
    ("oauth_provider", Provider.MICROSOFT),
    ("oauth_sign_in", SignIn.APPLICATION),
)


def _microsoft_app_fields(*credential: str) -> tuple[str, ...]:
    """Sign-in: Application's fields, with those of the chosen credential."""
    return (
        "oauth_sign_in",
        "username",
        "oauth_tenant_id",
        "oauth_client_id",
        "oauth_credential_type",
        *credential,
        "oauth_azure_environment",
    )


class TransportKind:
    """The kinds of transport the sender builds."""

    SMTP = "smtp"
    GRAPH = "graph"
    GMAIL = "gmail"


@dataclass(frozen=True)
class SendingMethod:
    """One way of sending: the choices that select it, its fields, transport and destinations."""

    key: str
    title: str
    # (choice field, value) pairs that all hold when this method is chosen.
    when: tuple[tuple[str, str], ...]
    # Fields it uses besides COMMON_FIELDS, in the page's order.
    fields: tuple[str, ...]
    transport: str
    # Each secret it uses -> the fields saying where that secret is sent. A stored
    # secret is used only while those fields still have the values it was saved with.
    secret_destinations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # SMTP XOAUTH2 with the stored grant from the consent flow (oauth app).
    uses_grant: bool = False
    # SMTP XOAUTH2 with an app-only token (client credentials): no sign-in, no grant.
    uses_app_token: bool = False

    @property
    def active_fields(self) -> tuple[str, ...]:
        return COMMON_FIELDS + self.fields

    @property
    def uses_xoauth2(self) -> bool:
        """Signs in to the SMTP server with an OAuth token (a grant's or the app's own)."""
        return self.uses_grant or self.uses_app_token

    @property
    def destination(self) -> tuple[str, ...]:
        """Every field naming where this method's credentials go (for Test Mail's audit)."""
        names: tuple[str, ...] = SMTP_SERVER if self.transport == TransportKind.SMTP else ()
        for fields in self.secret_destinations.values():
            names += tuple(name for name in fields if name not in names)
        return names


METHODS: tuple[SendingMethod, ...] = (
    SendingMethod(
        key="smtp_basic",
        title="SMTP",
        when=(("mode", Mode.SMTP), ("auth", Auth.BASIC)),
        fields=(*SMTP_SERVER, "auth", "username", "password"),
        transport=TransportKind.SMTP,
        secret_destinations={"password": SMTP_SERVER},
    ),
    SendingMethod(
        key="smtp_oauth_microsoft",
        title="SMTP with Microsoft OAuth",
        when=(
            ("mode", Mode.SMTP),
            ("auth", Auth.OAUTH),
            ("oauth_provider", Provider.MICROSOFT),
            ("oauth_sign_in", SignIn.DELEGATED),
        ),
        fields=(*SMTP_SERVER, "auth", "oauth_provider", *MICROSOFT_OAUTH_FIELDS),
        transport=TransportKind.SMTP,
        # The secret goes to the tenant's identity platform in that Azure cloud; the
        # grant's tokens go to the SMTP server (the grant is bound to it, oauth.consent).
        secret_destinations={"oauth_client_secret": ("oauth_tenant_id", "oauth_azure_environment")},
        uses_grant=True,
    ),
    SendingMethod(
        key="smtp_oauth_microsoft_app",
        title="SMTP with Microsoft OAuth (application)",
        when=(*MICROSOFT_APP, ("oauth_credential_type", CredentialType.SECRET)),
        # Username: the mailbox the app signs in as (XOAUTH2 user).
        fields=(
            *SMTP_SERVER,
            "auth",
            "oauth_provider",
            *_microsoft_app_fields("oauth_client_secret", "oauth_client_secret_expires_on"),
        ),
        transport=TransportKind.SMTP,
        # The secret goes to the tenant's identity platform; the app-only token it buys
        # goes to the SMTP server on the form (SMTP_SERVER, always part of the destination).
        secret_destinations={"oauth_client_secret": ("oauth_tenant_id", "oauth_azure_environment")},
        uses_app_token=True,
    ),
    SendingMethod(
        key="smtp_oauth_microsoft_app_certificate",
        title="SMTP with Microsoft OAuth (application, certificate)",
        when=(*MICROSOFT_APP, ("oauth_credential_type", CredentialType.CERTIFICATE)),
        fields=(
            *SMTP_SERVER,
            "auth",
            "oauth_provider",
            *_microsoft_app_fields("oauth_certificate"),
        ),
        transport=TransportKind.SMTP,
        # Like the client secret, the key signs assertions for one tenant in one cloud.
        secret_destinations={"oauth_certificate": ("oauth_tenant_id", "oauth_azure_environment")},
        uses_app_token=True,
    ),
    SendingMethod(
        key="smtp_oauth_google",
        title="SMTP with Google OAuth",
        when=(("mode", Mode.SMTP), ("auth", Auth.OAUTH), ("oauth_provider", Provider.GOOGLE)),
        fields=(*SMTP_SERVER, "auth", "oauth_provider", "google_client_id", "google_client_secret"),
        transport=TransportKind.SMTP,
        # Google's token URI is configuration (MAILCONFIG_GOOGLE), not on the form.
        secret_destinations={"google_client_secret": ()},
        uses_grant=True,
    ),
    SendingMethod(
        key="api_microsoft",
        title="Microsoft Graph API",
        when=(
            ("mode", Mode.API),
            ("api_provider", Provider.MICROSOFT),
            ("api_credential_type", CredentialType.SECRET),
        ),
        fields=(
            "api_provider",
            "api_tenant_id",
            "api_client_id",
            "api_credential_type",
            "api_client_secret",
            "api_client_secret_expires_on",
            "api_azure_environment",
        ),
        transport=TransportKind.GRAPH,
        secret_destinations={"api_client_secret": ("api_tenant_id", "api_azure_environment")},
    ),
    SendingMethod(
        key="api_microsoft_certificate",
        title="Microsoft Graph API with a certificate",
        when=(
            ("mode", Mode.API),
            ("api_provider", Provider.MICROSOFT),
            ("api_credential_type", CredentialType.CERTIFICATE),
        ),
        fields=(
            "api_provider",
            "api_tenant_id",
            "api_client_id",
            "api_credential_type",
            "api_certificate",
            "api_azure_environment",
        ),
        transport=TransportKind.GRAPH,
        # Like a client secret, the key signs assertions for one tenant in one cloud.
        secret_destinations={"api_certificate": ("api_tenant_id", "api_azure_environment")},
    ),
    SendingMethod(
        key="api_google",
        title="Gmail API",
        when=(("mode", Mode.API), ("api_provider", Provider.GOOGLE)),
        fields=("api_provider", "service_account_key"),
        transport=TransportKind.GMAIL,
        # The key names its own token URI, checked against MAILCONFIG_GOOGLE on upload.
        secret_destinations={"service_account_key": ()},
    ),
)

# The fields that select a method, in the order the page asks for them.
# How the change history and the conflict message name a field: the page repeats
# "Client ID", "Client Secret", "Tenant ID" and the like per section (the methods above).
AUDIT_NAMES = {
    "oauth_provider": "SMTP OAuth Mail Provider",
    "oauth_sign_in": "Microsoft OAuth Sign-in",
    "oauth_tenant_id": "Microsoft OAuth Tenant ID",
    "oauth_client_id": "Microsoft OAuth Client ID",
    "oauth_credential_type": "Microsoft OAuth Credential",
    "oauth_client_secret": "Microsoft OAuth Client Secret",
    "oauth_certificate": "Microsoft OAuth Certificate",
    "oauth_azure_environment": "Microsoft OAuth Azure environment",
    "oauth_client_secret_expires_on": "Microsoft OAuth Client Secret expiry date",
    "google_client_id": "Google OAuth Client ID",
    "google_client_secret": "Google OAuth Client Secret",
    "api_provider": "API Mail Provider",
    "api_tenant_id": "Microsoft Graph Tenant ID",
    "api_client_id": "Microsoft Graph Client ID",
    "api_credential_type": "Microsoft Graph Credential",
    "api_client_secret": "Microsoft Graph Client Secret",
    "api_client_secret_expires_on": "Microsoft Graph Client Secret expiry date",
    "api_certificate": "Microsoft Graph Certificate",
    "api_azure_environment": "Microsoft Graph Azure environment",
    "service_account_key": "Gmail API JSON Private Key",
}

CHOICE_FIELDS = tuple(dict.fromkeys(name for method in METHODS for name, _ in method.when))


def method_for(choice: Callable[[str], str]) -> SendingMethod:
    """The method the choices select; ``choice(name)`` gives the chosen value of a field."""
    for method in METHODS:
        if all(choice(name) == value for name, value in method.when):
            return method
    # Only reachable with a value no choice offers; callers validate choices first.
    return METHODS[0]


def show_if(*names: str) -> str:
    """The page's ``data-show-if`` rule for a block holding these fields.

    ``a=x&b=y|c=z`` (read by mail_server.js): any alternative whose conditions all hold.
    When the methods using the fields are exactly those that share some choices, the
    rule is just those choices ("mode=smtp"); otherwise one alternative per method.
    """
    users = [method for method in METHODS if any(name in method.fields for name in names)]
    if not users:
        raise ValueError(f"no sending method uses {names}")
    shared = [pair for pair in users[0].when if all(pair in m.when for m in users)]
    # A method "compatible" with the shared choices would show the block too.
    compatible = [
        method
        for method in METHODS
        if all(dict(method.when).get(name, value) == value for name, value in shared)
    ]
    alternatives = [tuple(shared)] if compatible == users else [m.when for m in users]
    return "|".join("&".join(f"{name}={value}" for name, value in alt) for alt in alternatives)


def switch_to_choices() -> dict[str, str]:
    """Per method, the choices a one-click link sets to select it (``data-switch-to``)."""
    return {
        method.key: ",".join(f"{name}={value}" for name, value in method.when) for method in METHODS
    }


def method_rules(predicate: Callable[[SendingMethod], bool]) -> str:
    """A ``data-show-if`` rule for the methods matching ``predicate`` (one alternative each)."""
    return "|".join(
        "&".join(f"{name}={value}" for name, value in method.when)
        for method in METHODS
        if predicate(method)
    )


def _is_method(key: str) -> Callable[[SendingMethod], bool]:
    return lambda method: method.key == key


def show_if_methods() -> dict[str, str]:
    """Per method key, its ``data-show-if`` rule; plus "grant" and "app_token" for the methods
    using a grant, or an app-only token (whichever the credential)."""
    rules = {method.key: method_rules(_is_method(method.key)) for method in METHODS}
    rules["grant"] = method_rules(lambda m: m.uses_grant)
    rules["app_token"] = method_rules(lambda m: m.uses_app_token)
    return rules


def fields_new_after_basic() -> dict[str, tuple[str, ...]]:
    """Per method, the fields to fill in after switching to it from SMTP Basic (the guide)."""
    basic = next(method for method in METHODS if method.key == "smtp_basic")
    return {
        method.key: tuple(
            name for name in method.fields if name not in basic.fields and name not in CHOICE_FIELDS
        )
        for method in METHODS
    }


def show_if_rules() -> dict[str, str]:
    """``show_if`` for every field some method uses, for the template (``show_if.<field>``)."""
    names = dict.fromkeys(name for method in METHODS for name in method.fields)
    return {name: show_if(name) for name in names}
