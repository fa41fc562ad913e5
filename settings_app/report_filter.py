"""What Django's error reports may show: never a secret someone typed, wherever the error was.

``sensitive_post_parameters`` works only once the view runs; an exception in a
middleware (a locked database in the access check, for example) came before it,
and its report carried the typed password. This filter is the project's
``DEFAULT_EXCEPTION_REPORTER_FILTER``, so every report (mailed, logged, or
Django's debug page) stars secrets by name, for every request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

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


def is_secret_name(name: object) -> bool:
    """True for a field or variable name whose value must never be shown."""
    return isinstance(name, str) and (name in SECRET_INPUTS or bool(SECRET_NAME.search(name)))


class ConsoleExceptionReporterFilter(SafeExceptionReporterFilter):
    """Stars secret POST fields, dictionary entries and local variables in every report."""

    def is_active(self, request: HttpRequest | None) -> bool:
        # Django turns filtering off under DEBUG; a typed secret stays hidden there too.
        return True

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
            (name, self.cleansed_substitute if is_secret_name(name) else value)
            for name, value in variables
        ]

    def _cleanse_value(self, request: HttpRequest | None, value: Any, depth: int) -> Any:
        """Star secret-named entries in dictionaries (and a template's context) held by a variable."""
        if depth > MAX_DEPTH:
            return value
        if isinstance(value, MultiValueDict):
            return self.get_cleansed_multivaluedict(request, value)
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
        return value
