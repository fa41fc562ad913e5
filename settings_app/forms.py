"""The Mail Server form: which fields are active for the chosen mode, and their validation.

Only the active section is validated and written; fields of other modes keep
their stored values, so switching mode and back loses nothing. Secrets are never
rendered back: a blank secret keeps the stored one, and "Clear" removes it.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

from . import validators
from .models import DEFAULT_PORTS, Auth, MailServerConfig, Mode, Provider, Security
from .values import azure_environments

KEEP_STORED_HELP = "Stored. Leave blank to keep it, or type a new one."


class LoginForm(AuthenticationForm):
    """The console's login form."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update({"autofocus": True, "autocomplete": "username"})


def _azure_choices() -> list[tuple[str, str]]:
    return [(key, env.label) for key, env in azure_environments().items()]


class SecretField(forms.CharField):
    """A password input that never renders its value back."""

    def __init__(self, label: str, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", False)
        widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
        super().__init__(label=label, widget=widget, **kwargs)


class MailServerForm(forms.Form):
    """Every field of the page; ``active_fields()`` says which ones the chosen options use."""

    mode = forms.ChoiceField(label="Mode", choices=Mode.choices, widget=forms.RadioSelect)

    server_name = forms.CharField(label="Server Name or IP", required=False, max_length=255)
    port = forms.IntegerField(label="Port Number", required=False, min_value=1, max_value=65535)
    from_address = forms.CharField(
        label="From Address", required=False, max_length=254, strip=False
    )
    admin_address = forms.CharField(
        label="Admin Mail Address", required=False, max_length=254, strip=False
    )
    security = forms.ChoiceField(
        label="Connection Security", choices=Security.choices, widget=forms.RadioSelect
    )
    auth = forms.ChoiceField(label="Authentication", choices=Auth.choices, widget=forms.RadioSelect)
    username = forms.CharField(label="Username", required=False, max_length=320)
    password = SecretField("Password", max_length=1024)
    clear_password = forms.BooleanField(label="Clear the stored password", required=False)

    oauth_provider = forms.ChoiceField(
        label="Mail Provider", choices=Provider.choices, widget=forms.RadioSelect
    )
    oauth_tenant_id = forms.CharField(label="Tenant ID", required=False, max_length=255)
    oauth_client_id = forms.CharField(label="Client ID", required=False, max_length=64)
    oauth_client_secret = SecretField("Client Secret", max_length=1024)
    clear_oauth_client_secret = forms.BooleanField(label="Clear the stored secret", required=False)
    oauth_azure_environment = forms.ChoiceField(label="Azure environment", choices=_azure_choices)
    google_client_id = forms.CharField(label="Client ID", required=False, max_length=255)
    google_client_secret = SecretField("Client Secret", max_length=1024)
    clear_google_client_secret = forms.BooleanField(label="Clear the stored secret", required=False)

    api_provider = forms.ChoiceField(
        label="Mail Provider", choices=Provider.choices, widget=forms.RadioSelect
    )
    api_tenant_id = forms.CharField(label="Tenant ID", required=False, max_length=255)
    api_client_id = forms.CharField(label="Client ID", required=False, max_length=64)
    api_client_secret = SecretField("Client Secret", max_length=1024)
    clear_api_client_secret = forms.BooleanField(label="Clear the stored secret", required=False)
    api_azure_environment = forms.ChoiceField(label="Azure environment", choices=_azure_choices)
    service_account_key = forms.FileField(
        label="JSON Private Key",
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "application/json,.json"}),
    )
    clear_service_account_key = forms.BooleanField(label="Remove the stored key", required=False)

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)

    # secret field -> its "clear" checkbox
    SECRETS = {
        "password": "clear_password",
        "oauth_client_secret": "clear_oauth_client_secret",
        "google_client_secret": "clear_google_client_secret",
        "api_client_secret": "clear_api_client_secret",
        "service_account_key": "clear_service_account_key",
    }

    def __init__(self, *args: Any, stored: MailServerConfig, **kwargs: Any) -> None:
        self.stored = stored
        if not args and "data" not in kwargs:
            kwargs.setdefault("initial", self.initial_from(stored))
        super().__init__(*args, **kwargs)
        self.service_account_info: dict[str, Any] | None = None
        for name in self.SECRETS:
            if getattr(stored, name):
                self.fields[name].help_text = (
                    "A key is stored. Upload a new file to replace it."
                    if name == "service_account_key"
                    else KEEP_STORED_HELP
                )
                self.fields[name].widget.attrs["placeholder"] = "stored - leave blank to keep"
            else:
                self.fields[self.SECRETS[name]].widget = forms.HiddenInput()
        for clear_name in self.SECRETS.values():
            self.fields[clear_name].widget.attrs.setdefault("class", "form-check-input")

    @classmethod
    def initial_from(cls, stored: MailServerConfig) -> dict[str, Any]:
        names = [
            name
            for name in cls.base_fields
            if name not in cls.SECRETS and not name.startswith("clear_")
        ]
        initial = {name: getattr(stored, name) for name in names}
        if initial["port"] is None:
            initial["port"] = DEFAULT_PORTS.get(stored.security)
        return initial

    # -- which fields the chosen options use ------------------------------------------

    def active_fields(self) -> list[str]:
        """Names of the fields the chosen mode, authentication and provider use."""
        get = self._choice
        names = ["mode", "from_address", "admin_address"]
        if get("mode") == Mode.API:
            names.append("api_provider")
            if get("api_provider") == Provider.GOOGLE:
                names.append("service_account_key")
            else:
                names += [
                    "api_tenant_id",
                    "api_client_id",
                    "api_client_secret",
                    "api_azure_environment",
                ]
            return names
        names += ["server_name", "port", "security", "auth"]
        if get("auth") == Auth.OAUTH:
            names.append("oauth_provider")
            if get("oauth_provider") == Provider.GOOGLE:
                names += ["google_client_id", "google_client_secret"]
            else:
                names += [
                    "username",
                    "oauth_tenant_id",
                    "oauth_client_id",
                    "oauth_client_secret",
                    "oauth_azure_environment",
                ]
        else:
            names += ["username", "password"]
        return names

    def required_fields(self) -> set[str]:
        optional = {
            "password",
            "security",
            "auth",
            "oauth_azure_environment",
            "api_azure_environment",
        }
        if self._choice("auth") == Auth.BASIC:
            optional.add("username")
        return set(self.active_fields()) - optional

    def _choice(self, name: str) -> str:
        # Before cleaning, read the raw posted choice; fall back to the stored value.
        if hasattr(self, "cleaned_data") and name in self.cleaned_data:
            return self.cleaned_data[name]
        if self.is_bound:
            return self.data.get(name) or getattr(self.stored, name)
        return getattr(self.stored, name)

    # -- validation -------------------------------------------------------------------

    FIELD_VALIDATORS = {
        "server_name": validators.validate_host,
        "from_address": validators.validate_address,
        "admin_address": validators.validate_address,
        "oauth_tenant_id": validators.validate_tenant_id,
        "api_tenant_id": validators.validate_tenant_id,
        "oauth_client_id": validators.validate_guid,
        "api_client_id": validators.validate_guid,
        "google_client_id": validators.validate_google_client_id,
    }

    # Error reports (Django's 500 page, HTML error mails) show locals: these hold secrets.
    @sensitive_variables("data", "value")
    def clean(self) -> dict[str, Any]:
        data = super().clean()
        active = self.active_fields()
        required = self.required_fields()
        for name in active:
            if name in self.errors:
                continue
            value = data.get(name)
            if name in self.SECRETS:
                self._clean_secret(name, value, required=name in required)
                continue
            if value in (None, ""):
                if name in required:
                    self.add_error(
                        name, ValidationError("This field is required.", code="required")
                    )
                continue
            validator = self.FIELD_VALIDATORS.get(name)
            if validator is not None:
                try:
                    data[name] = validator(value)
                except ValidationError as err:
                    self.add_error(name, err)
        if "username" in active and "username" not in self.errors:
            self._clean_username(data.get("username") or "")
        return data

    def _clean_username(self, username: str) -> None:
        try:
            validators.reject_line_breaks(username)
        except ValidationError as err:
            self.add_error("username", err)
            return
        if self._choice("auth") != Auth.BASIC or username:
            return
        if self._new_secret("password"):
            self.add_error("username", "Enter the username that goes with this password.")
        elif self.stored.password and not self.cleaned_data.get("clear_password"):
            # Saving would keep a password no login uses while mail goes out unauthenticated.
            self.add_error(
                "username",
                "Enter the username, or tick Clear the stored password to send without "
                "authentication.",
            )

    def _new_secret(self, name: str) -> bool:
        return bool(self.cleaned_data.get(name))

    @sensitive_variables("value")
    def _clean_secret(self, name: str, value: Any, *, required: bool) -> None:
        clearing = self.cleaned_data.get(self.SECRETS[name])
        if name == "service_account_key" and value:
            try:
                self.service_account_info = validators.parse_service_account_key(
                    value.read(validators.SERVICE_ACCOUNT_MAX_BYTES + 1)
                )
            except ValidationError as err:
                self.add_error(name, err)
            return
        will_have_value = bool(value) or (bool(getattr(self.stored, name)) and not clearing)
        if required and not will_have_value:
            self.add_error(name, ValidationError("This field is required.", code="required"))

    # -- applying the form -------------------------------------------------------------

    @sensitive_variables("new")
    def apply_to(self, config: MailServerConfig) -> list[str]:
        """Write the active fields into ``config`` (unsaved); return labels of changed fields."""
        changed: list[str] = []
        for name in self.active_fields():
            field = self.fields[name]
            if name in self.SECRETS:
                new = self._secret_value(name)
                if new is None:
                    continue
                if new != getattr(config, name):
                    changed.append(
                        f"{field.label} (changed)" if new else f"{field.label} (cleared)"
                    )
                    setattr(config, name, new)
                continue
            new = self.cleaned_data.get(name)
            if new is None and name != "port":
                new = ""
            if new != getattr(config, name):
                changed.append(self._label(name))
                setattr(config, name, new)
        if self.service_account_info is not None:
            config.service_account_email = self.service_account_info["client_email"]
            config.service_account_client_id = self.service_account_info["client_id"]
        return changed

    @sensitive_variables("value")
    def _secret_value(self, name: str) -> str | None:
        """The new secret, "" to clear it, or None to keep what is stored."""
        if name == "service_account_key" and self.service_account_info is not None:
            return json.dumps(self.service_account_info)
        value = self.cleaned_data.get(name)
        if name != "service_account_key" and value:
            return value
        if self.cleaned_data.get(self.SECRETS[name]):
            return ""
        return None

    def _label(self, name: str) -> str:
        label = str(self.fields[name].label)
        if name.startswith("oauth_") or name.startswith("google_"):
            return f"SMTP OAuth {label}"
        if name.startswith("api_"):
            return f"API {label}"
        return label

    @property
    def rejected_secrets(self) -> list[str]:
        """Labels of secrets the admin typed that are not rendered back after an error."""
        if not self.is_bound:
            return []
        # Named as in the audit ("API Client Secret"): three secrets share the label "Client Secret".
        return [
            self._label(name)
            for name in self.SECRETS
            if self.data.get(name) or (name in self.files)
        ]
