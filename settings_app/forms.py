"""The Mail Server form: which fields are active for the chosen mode, and their validation.

Only the active section is validated and written; fields of other modes keep
their stored values, so switching mode and back loses nothing. Secrets are never
rendered back: a blank secret keeps the stored one, and "Clear" removes it.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

from . import validators
from .models import (
    DEFAULT_PORTS,
    SECRET_FIELDS,
    Auth,
    Connection,
    MailServerConfig,
    config_column,
    config_label,
)
from .secret_policy import (
    TYPED_SECRETS,
    UPLOADED_SECRETS,
    SecretPolicy,
    clear_field,
    secret_fields,
)
from .sending_methods import AUDIT_NAMES, CHOICE_FIELDS, SendingMethod, method_for
from .values import azure_environments

# Imported from here by the pages and the restore command.
__all__ = [
    "TYPED_SECRETS",
    "UPLOADED_SECRETS",
    "LoginForm",
    "MailServerForm",
    "clear_field",
]

# The backup's "Use the backup connection when the primary fails" checkbox.
FAILOVER_SWITCH = "use_when_primary_fails"
EXPIRY_DATE_HELP = (
    "Optional: the date Entra ID shows for this secret under App registrations > the app > "
    'Certificates & secrets > Client secrets, column "Expires". The console warns 30, 7 '
    "and 1 days ahead."
)


class LoginForm(AuthenticationForm):
    """The console's login form."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update({"autofocus": True, "autocomplete": "username"})


def _azure_choices() -> list[tuple[str, str]]:
    return [(key, env.label) for key, env in azure_environments().items()]


def text_field(name: str, **kwargs: Any) -> forms.CharField:
    """An optional text input labelled and bounded as the model's column (said once, there)."""
    kwargs.setdefault("required", False)
    return forms.CharField(
        label=config_label(name), max_length=config_column(name).max_length, **kwargs
    )


def radio_field(name: str, **kwargs: Any) -> forms.ChoiceField:
    """Radio buttons labelled as the model's column, with its choices."""
    kwargs.setdefault("choices", config_column(name).choices)
    return forms.ChoiceField(label=config_label(name), widget=forms.RadioSelect, **kwargs)


def credential_choice(name: str) -> forms.ChoiceField:
    """An Azure app's Credential: Client Secret or Certificate."""
    # Not required: a post from before certificates existed keeps the stored choice.
    return radio_field(name, required=False)


def certificate_password() -> forms.CharField:
    """The password that opens an uploaded certificate once; never stored."""
    return forms.CharField(
        label="Certificate password",
        required=False,
        strip=False,
        max_length=1024,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="For a .pfx/.p12 file or an encrypted key: opens the file once; not stored.",
    )


def secret_expiry_date(name: str) -> forms.DateField:
    """A client secret's optional "Secret expires on", read by the expiry radar."""
    return forms.DateField(
        label=config_label(name),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=EXPIRY_DATE_HELP,
    )


class MailServerForm(forms.Form):
    """Every field of the page; ``active_fields()`` says which ones the chosen options use."""

    mode = radio_field("mode")

    server_name = text_field("server_name")
    port = forms.IntegerField(
        label=config_label("port"), required=False, min_value=1, max_value=65535
    )
    from_address = text_field("from_address", strip=False)
    admin_address = text_field("admin_address", strip=False)
    security = radio_field("security")
    auth = radio_field("auth")
    username = text_field("username")

    oauth_provider = radio_field("oauth_provider")
    # Not required: a post (or an exported settings file) from before this choice existed
    # keeps the stored sign-in (clean_oauth_sign_in).
    oauth_sign_in = radio_field("oauth_sign_in", required=False)
    oauth_tenant_id = text_field("oauth_tenant_id")
    oauth_client_id = text_field("oauth_client_id")
    oauth_credential_type = credential_choice("oauth_credential_type")
    oauth_certificate_password = certificate_password()
    oauth_azure_environment = forms.ChoiceField(
        label=config_label("oauth_azure_environment"), choices=_azure_choices
    )
    google_client_id = text_field("google_client_id")

    api_provider = radio_field("api_provider")
    api_tenant_id = text_field("api_tenant_id")
    api_client_id = text_field("api_client_id")
    api_credential_type = credential_choice("api_credential_type")
    api_certificate_password = certificate_password()
    api_client_secret_expires_on = secret_expiry_date("api_client_secret_expires_on")
    oauth_client_secret_expires_on = secret_expiry_date("oauth_client_secret_expires_on")
    api_azure_environment = forms.ChoiceField(
        label=config_label("api_azure_environment"), choices=_azure_choices
    )

    # Backup Connection page only (removed from the primary's form in __init__).
    use_when_primary_fails = forms.BooleanField(label=config_label(FAILOVER_SWITCH), required=False)

    # Hidden: its errors are shown at the top of the page, where no field is marked.
    version = forms.IntegerField(
        widget=forms.HiddenInput,
        min_value=0,
        error_messages={
            "required": "The page's version number was missing from the form, so it could not "
            "be checked against the stored settings. Reload the page and enter your changes "
            "again.",
            "invalid": "The page's version number on the form was not valid, so it could not "
            "be checked against the stored settings. Reload the page and enter your changes "
            "again.",
            "min_value": "The page's version number on the form was not valid, so it could not "
            "be checked against the stored settings. Reload the page and enter your changes "
            "again.",
        },
    )

    def __init__(
        self, *args: Any, stored: MailServerConfig, signs_in_now: bool = False, **kwargs: Any
    ) -> None:
        self.stored = stored
        # Test Mail and Check permissions sign in with these values at once.
        self.signs_in_now = signs_in_now
        if not args and "data" not in kwargs:
            kwargs.setdefault("initial", self.initial_from(stored))
        super().__init__(*args, **kwargs)
        if stored.connection != Connection.BACKUP:
            del self.fields[FAILOVER_SWITCH]
        else:
            self.fields[FAILOVER_SWITCH].widget.attrs["class"] = "form-check-input"
        self.secrets = SecretPolicy(self, stored)
        self.secrets.dress_fields()

    @classmethod
    def initial_from(cls, stored: MailServerConfig) -> dict[str, Any]:
        clears = {clear_field(name) for name in SECRET_FIELDS}
        names = [name for name in cls.base_fields if name not in (*TYPED_SECRETS, *clears)]
        initial = {name: getattr(stored, name) for name in names}
        if initial["port"] is None:
            initial["port"] = DEFAULT_PORTS.get(stored.security)
        return initial

    # -- which fields the chosen options use ------------------------------------------

    @property
    def method(self) -> SendingMethod:
        """The sending method the chosen Mode, Authentication and Mail Provider select."""
        return method_for(self._choice)

    def active_fields(self) -> list[str]:
        """Names of the fields the chosen sending method uses (declared in sending_methods)."""
        return list(self.method.active_fields)

    def active_secrets(self) -> list[str]:
        """The secrets the chosen sending method uses."""
        return [name for name in self.active_fields() if name in SECRET_FIELDS]

    def required_fields(self) -> set[str]:
        optional = {
            "password",
            "security",
            "auth",
            "oauth_azure_environment",
            "api_azure_environment",
            "api_credential_type",
            "oauth_credential_type",
            "api_client_secret_expires_on",
            "oauth_client_secret_expires_on",
        }
        if self._choice("auth") == Auth.BASIC:
            optional.add("username")
        return set(self.active_fields()) - optional

    def value(self, name: str) -> str:
        """A field's value as the page shows it: typed (posted) when bound, else stored."""
        if name in CHOICE_FIELDS:
            return self._choice(name)
        if self.is_bound:
            return str(self.data.get(name, ""))
        return str(getattr(self.stored, name) or "")

    def clean_oauth_sign_in(self) -> str:
        return self.cleaned_data.get("oauth_sign_in") or self.stored.oauth_sign_in

    def clean_api_credential_type(self) -> str:
        return self.cleaned_data.get("api_credential_type") or self.stored.api_credential_type

    def clean_oauth_credential_type(self) -> str:
        return self.cleaned_data.get("oauth_credential_type") or self.stored.oauth_credential_type

    def _choice(self, name: str) -> str:
        # Before cleaning, read the raw posted choice; fall back to the stored value
        # (also for a value no button offers: its error is on the field already).
        if hasattr(self, "cleaned_data") and name in self.cleaned_data:
            return self.cleaned_data[name]
        if self.is_bound and name in CHOICE_FIELDS:
            posted = self.data.get(name)
            # A ChoiceField's choices are a list of (value, label) once the field is built.
            choices = cast("list[tuple[Any, str]]", getattr(self.fields[name], "choices", []))
            if posted in {str(value) for value, _ in choices}:
                return posted
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
        super().clean()
        data = self.cleaned_data
        active = self.active_fields()
        required = self.required_fields()
        for name in active:
            if name in self.errors:
                continue
            value = data.get(name)
            if name in SECRET_FIELDS:
                self.secrets.clean(name, value, required=name in required)
                continue
            if value is None or value == "":
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
        self.secrets.check_destinations(data)
        return data

    def stored_secrets_used(self) -> list[str]:
        """Audit names of the stored secrets a valid form relies on (left blank, not cleared)."""
        return [
            self.audit_name(name)
            for name in self.active_secrets()
            if self.secrets.keeps_stored(name)
        ]

    def _clean_username(self, username: str) -> None:
        try:
            validators.reject_line_breaks(username)
        except ValidationError as err:
            self.add_error("username", err)
            return
        if self._choice("auth") != Auth.BASIC:
            return
        if username:
            if (
                self.signs_in_now
                and "password" not in self.errors
                and not self.secrets.is_new("password")
                and not self.secrets.keeps_stored("password")
            ):
                # Signing in with an empty password fails at best, and counts as a failed
                # sign-in on servers that lock accounts.
                self.add_error(
                    "password",
                    "Enter the password for this username, or clear the Username to send "
                    "without authentication.",
                )
            return
        if self.secrets.is_new("password"):
            self.add_error("username", "Enter the username that goes with this password.")
        elif self.stored.password and not self.cleaned_data.get("clear_password"):
            # Saving would keep a password no login uses while mail goes out unauthenticated.
            self.add_error(
                "username",
                "Enter the username, or tick Clear the stored password to send without "
                "authentication.",
            )

    # -- applying the form -------------------------------------------------------------

    @sensitive_variables("new")
    def apply_to(self, config: MailServerConfig) -> list[str]:
        """Write the active fields into ``config`` (unsaved); return labels of changed fields."""
        changed: list[str] = []
        for name in self.active_fields():
            if name in SECRET_FIELDS:
                new = self.secrets.new_value(name)
                if new is None:
                    continue
                if new != getattr(config, name):
                    label = self.audit_name(name)
                    changed.append(f"{label} (changed)" if new else f"{label} (cleared)")
                    setattr(config, name, new)
                continue
            new = self.cleaned_data.get(name)
            if new is None and not config_column(name).null:
                new = ""
            if new != getattr(config, name):
                changed.append(self.audit_name(name))
                setattr(config, name, new)
        if FAILOVER_SWITCH in self.fields:
            switch = bool(self.cleaned_data.get(FAILOVER_SWITCH))
            if switch != config.use_when_primary_fails:
                changed.append(f"{self.audit_name(FAILOVER_SWITCH)} ({'on' if switch else 'off'})")
                config.use_when_primary_fails = switch
        self.secrets.apply_facts(config, self.active_fields())
        return changed

    def audit_name(self, name: str) -> str:
        """The field's name in the change history: its label, with its section where shared."""
        return AUDIT_NAMES.get(name) or str(self.fields[name].label)

    @property
    def rejected_secrets(self) -> list[str]:
        """Secrets the admin typed in the active section, which are not rendered back.

        Named as in the audit ("Microsoft Graph Client Secret"): the page repeats
        "Client Secret". Secrets of sections not in use are neither saved nor named.
        """
        return self.secrets.rejected(self.active_secrets())

    @property
    def rejected_key_file(self) -> bool:
        """A file was chosen for the active section and is not kept after an error."""
        return self.secrets.rejected_upload(self.active_secrets())

    def destination_summary(self) -> str:
        """Where the chosen method would send (for Test Mail's audit entry), as posted."""
        method = self.method
        parts = []
        for name in method.destination:
            field = self.fields[name]
            value = self.cleaned_data.get(name) if hasattr(self, "cleaned_data") else None
            if value in (None, ""):
                value = self.data.get(name, "")
            choices = {str(key): label for key, label in getattr(field, "choices", [])}
            shown = choices.get(str(value), str(value)[:255]) or "(empty)"
            parts.append(f"{field.label} {shown}")
        return f"{method.title} ({', '.join(parts)})" if parts else method.title

    @property
    def hidden_and_form_errors(self) -> list[str]:
        """Errors no visible field shows: the form's own and those of hidden fields."""
        errors = [str(error) for error in self.non_field_errors()]
        for field in self.hidden_fields():
            errors += [str(error) for error in field.errors]
        return errors

    @property
    def has_visible_field_errors(self) -> bool:
        hidden = {field.name for field in self.hidden_fields()}
        return any(name in self.fields and name not in hidden for name in self.errors)


# The secrets' inputs and "Clear" boxes, declared from SECRET_FIELDS, come first.
MailServerForm.base_fields = {**secret_fields(), **MailServerForm.base_fields}
