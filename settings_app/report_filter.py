"""What Django's error reports may show: never a secret someone typed, wherever the error was.

``sensitive_post_parameters`` works only once the view runs; an exception in a
middleware (a locked database in the access check, for example) came before it,
and its report carried the typed password. This filter is the project's
``DEFAULT_EXCEPTION_REPORTER_FILTER``, so every report (mailed, logged, or
Django's debug page) stars secrets by name, for every request.

Credentials also reach a report from the process environment (``HTTPS_PROXY=http://
user:pass@...``, ``DATABASE_URL``), which a WSGI server may copy into every request's
META, and from settings. So the report's META holds only the request's own variables
and headers; every URL-shaped value has its userinfo starred; and a setting Django does
not define is shown only when it is on ``SHOWN_PROJECT_SETTINGS`` (deny by default: an
operator's own setting, or a webhook URL whose path is the secret, stays starred).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from django.conf import global_settings
from django.http import HttpRequest
from django.template.context import BaseContext
from django.utils.datastructures import MultiValueDict
from django.views.debug import SafeExceptionReporterFilter

from .models import SECRET_FIELDS

# Names that look secret, in POST data, dictionaries and local variables. Narrower than
# Django's hidden_settings (which also matches AUTH and API): the form's "auth" choice and
# "oauth_client_id" help whoever reads the report, and are not secrets.
SECRET_NAME = re.compile(
    r"pass|secret|token|key|signature|credential|private|cookie|session|csrf", re.I
)
# The stored secrets' form inputs, and the sign-in page's password.
SECRET_INPUTS = frozenset(SECRET_FIELDS) | {"password"}
MAX_DEPTH = 4
# The userinfo of a URL ("scheme://user:password@"), up to the last "@" before the path.
URL_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/?#\s]*@", re.I)
# What a WSGI server puts in META for the request itself (PEP 3333, CGI); with the HTTP_
# headers, the rest of META is the process environment, left out of reports.
REQUEST_VARIABLES = frozenset(
    {
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
        "PATH_INFO",
        "QUERY_STRING",
        "REMOTE_ADDR",
        "REMOTE_HOST",
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "SERVER_SOFTWARE",
        "wsgi.url_scheme",
    }
)
# Settings of this project and its libraries that hold no credential; any other setting
# Django does not define itself is starred in reports.
SHOWN_PROJECT_SETTINGS = frozenset(
    {
        "SETTINGS_MODULE",
        "AXES_CLIENT_IP_CALLABLE",
        "AXES_COOLOFF_TIME",
        "AXES_FAILURE_LIMIT",
        "AXES_HANDLER",
        "AXES_LOCKOUT_CALLABLE",
        "AXES_LOCKOUT_PARAMETERS",
        "AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT",
        "AXES_VERBOSE",
        "BASE_DIR",
        "CRISPY_ALLOWED_TEMPLATE_PACKS",
        "CRISPY_TEMPLATE_PACK",
        "DATA_DIR",
        "MAILCONFIG_ALERT_AFTER_TRANSIENT_FAILURES",
        "MAILCONFIG_ALERT_WEBHOOK_RETRY_SCHEDULE",
        "MAILCONFIG_ALERT_WEBHOOK_TIMEOUT",
        "MAILCONFIG_AZURE_ENVIRONMENTS",
        "MAILCONFIG_CA_FILE",
        "MAILCONFIG_DEFAULT_AZURE_ENVIRONMENT",
        "MAILCONFIG_DELIVERY",
        "MAILCONFIG_EHLO_NAME",
        "MAILCONFIG_FAILED_BODY_DAYS",
        "MAILCONFIG_FAILOVER_AFTER",
        "MAILCONFIG_GOOGLE",
        "MAILCONFIG_KEY_FILE",
        "MAILCONFIG_LOG_RETENTION_DAYS",
        "MAILCONFIG_LOGIN_ADDRESS_FAILURE_LIMIT",
        "MAILCONFIG_PUBLIC_URL",
        "MAILCONFIG_RETRY_SCHEDULE",
        "MAILCONFIG_SEND_LEASE",
        "MAILCONFIG_DATA_TIMEOUT",
        "MAILCONFIG_SEND_TIMEOUT",
        "MAILCONFIG_TIMEOUT",
        "MAILCONFIG_TRUSTED_PROXIES",
        "ROOT_URLCONF",
        "TASKS",
        "WHITENOISE_USE_FINDERS",
    }
)
DJANGO_SETTINGS = frozenset(name for name in dir(global_settings) if name.isupper())


def star_userinfo(text: str) -> str:
    """``text`` with the user name and password of every URL in it starred."""
    return URL_USERINFO.sub(lambda found: f"{found['scheme']}********@", text)


def is_secret_name(name: object) -> bool:
    """True for a field or variable name whose value must never be shown."""
    return isinstance(name, str) and (name in SECRET_INPUTS or bool(SECRET_NAME.search(name)))


class ConsoleExceptionReporterFilter(SafeExceptionReporterFilter):
    """Stars secret POST fields, dictionary entries and local variables in every report."""

    def is_active(self, request: HttpRequest | None) -> bool:
        # Django turns filtering off under DEBUG; a typed secret stays hidden there too.
        return True

    def get_safe_request_meta(self, request: HttpRequest) -> dict[str, Any]:
        """The request's own variables and headers: none of the process environment."""
        meta = getattr(request, "META", None) or {}
        return {
            name: self.cleanse_setting(name, value)
            for name, value in meta.items()
            if name in REQUEST_VARIABLES or name.startswith("HTTP_")
        }

    def get_safe_settings(self) -> dict[str, Any]:
        """Django's settings cleansed; the project's only when known to hold no secret."""
        return {
            name: value
            if name in DJANGO_SETTINGS or name in SHOWN_PROJECT_SETTINGS
            else self.cleansed_substitute
            for name, value in super().get_safe_settings().items()
        }

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        return _star_urls(cleansed)

    def get_post_parameters(self, request: HttpRequest | None) -> Any:
        if request is None:
            return {}
        return self.get_cleansed_multivaluedict(request, request.POST)

    # Returns a copy of what it is given: a QueryDict from Django, or a MultiValueDict found
    # in a report's variables (the stubs say QueryDict only).
    def get_cleansed_multivaluedict(  # type: ignore[override]
        self, request: HttpRequest | None, multivaluedict: MultiValueDict
    ) -> MultiValueDict:
        marked = getattr(request, "sensitive_post_parameters", [])
        cleansed = multivaluedict.copy()
        for name in list(cleansed.keys()):
            if marked == "__ALL__" or name in marked or is_secret_name(name):
                cleansed[name] = self.cleansed_substitute
        return cleansed

    def cleanse_special_types(self, request: HttpRequest | None, value: Any) -> Any:
        return self._cleanse_value(request, super().cleanse_special_types(request, value), 0)

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: Any) -> Any:
        variables: Iterable[tuple[str, Any]] = super().get_traceback_frame_variables(
            request, tb_frame
        )
        return [
            (name, self.cleansed_substitute if is_secret_name(name) else _star_urls(value))
            for name, value in variables
        ]

    def _cleanse_value(self, request: HttpRequest | None, value: Any, depth: int) -> Any:
        """Star secret-named entries in dictionaries (and a template's context) held by a variable."""
        if depth > MAX_DEPTH:
            return value
        if isinstance(value, MultiValueDict):
            return self.get_cleansed_multivaluedict(request, value)
        if isinstance(value, os._Environ):
            return self.cleansed_substitute  # the process environment, held by a variable
        if isinstance(value, BaseContext):
            # A template context's repr lists every variable it holds.
            return [self._cleanse_value(request, layer, depth + 1) for layer in value.dicts]  # type: ignore[attr-defined]  # not in django-stubs
        if isinstance(value, dict):
            return {
                key: self.cleansed_substitute
                if is_secret_name(key)
                else self._cleanse_value(request, item, depth + 1)
                for key, item in value.items()
            }
        if type(value) in (list, tuple):
            return type(value)(self._cleanse_value(request, item, depth + 1) for item in value)
        return _star_urls(value)


def _star_urls(value: Any) -> Any:
    # type(), not isinstance(): a lazy object claims to be a str without being one.
    return star_userinfo(value) if issubclass(type(value), str) else value
