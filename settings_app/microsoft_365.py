"""Microsoft 365's SMTP hosts and the end of Basic authentication for SMTP AUTH: declared once.

Read by the Mail Server page (its warning, live in the browser too), the banner on
every console page and the sender's permission check. Floor data: imports only the
settings and ``values``, so the sender may read it.

Microsoft turns SMTP AUTH with Basic authentication off by default for existing
tenants at the end of December 2026 (Exchange Online message MC786329, update of
27 January 2026); a final removal follows in the second half of 2027.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from django.utils import timezone

from .models import Auth, Mode
from .values import azure_environments

BASIC_AUTH_SUNSET = datetime.date(2026, 12, 31)
BASIC_AUTH_SUNSET_TEXT = "the end of December 2026 (31 December 2026)"

# Submission hosts besides each Azure cloud's ``smtp_host`` (MAILCONFIG_AZURE_ENVIRONMENTS):
# the legacy and Outlook names, and their national-cloud equivalents.
EXTRA_SMTP_HOSTS = frozenset(
    {
        "smtp.office365.com",
        "smtp-legacy.office365.com",
        "outlook.office365.com",
        "smtp-mail.outlook.com",
        # US Government (GCC High, DoD) and China (21Vianet).
        "smtp.office365.us",
        "outlook.office365.us",
        "outlook-dod.office365.us",
        "smtp.partner.outlook.cn",
        "partner.outlook.cn",
    }
)
# Direct send / relay through a tenant's MX endpoint (contoso-com.mail.protection.outlook.com).
RELAY_HOST_SUFFIXES = (
    ".mail.protection.outlook.com",
    ".mail.protection.office365.us",
    ".mail.protection.partner.outlook.cn",
)


def smtp_hosts() -> frozenset[str]:
    """The exact Microsoft 365 SMTP host names: every Azure cloud's, plus the named extras."""
    configured = {env.smtp_host.lower() for env in azure_environments().values() if env.smtp_host}
    return frozenset(configured) | EXTRA_SMTP_HOSTS


def is_microsoft_365_host(host: str) -> bool:
    """Whether ``host`` is an Exchange Online SMTP endpoint (submission or relay), any cloud."""
    name = (host or "").strip().lower().rstrip(".")
    return bool(name) and (name in smtp_hosts() or name.endswith(RELAY_HOST_SUFFIXES))


def host_patterns() -> dict[str, list[str]]:
    """The host list for the page's script: exact names and relay suffixes."""
    return {"hosts": sorted(smtp_hosts()), "suffixes": list(RELAY_HOST_SUFFIXES)}


def basic_auth_at_risk(value: Callable[[str], str]) -> bool:
    """Basic authentication with a username against Microsoft 365: what the sunset stops.

    ``value(name)`` gives a field's value (stored or typed).
    """
    return (
        value("mode") == Mode.SMTP
        and value("auth") == Auth.BASIC
        and bool((value("username") or "").strip())
        and is_microsoft_365_host(value("server_name") or "")
    )


def sunset_phrase(today: datetime.date | None = None) -> str:
    """When Basic authentication stops, said relative to ``today``."""
    today = today or timezone.localdate()
    if today > BASIC_AUTH_SUNSET:
        return "since " + BASIC_AUTH_SUNSET_TEXT
    days = (BASIC_AUTH_SUNSET - today).days
    when = "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"
    return f"at {BASIC_AUTH_SUNSET_TEXT}, {when}"


BASIC_AUTH_RETIREMENT = (
    "Microsoft 365 turns Basic authentication for SMTP AUTH off by default for existing "
    f"tenants at {BASIC_AUTH_SUNSET_TEXT}; from then on the login is refused (550 5.7.30 or "
    "535 5.7.139) and no mail is sent. Switch Authentication to OAuth (Sign-in: Application "
    "needs no user sign-in), or the Mode to API (Microsoft Graph)."
)
