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
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import validators
from .certificates import (
    CERTIFICATE_MAX_BYTES,
    CERTIFICATE_SECRETS,
    AppCertificate,
    facts_of,
    parse_certificate_upload,
)
from .models import (
    DEFAULT_PORTS,
    SECRET_FIELDS,
    Auth,
    Connection,
    CredentialType,
    MailServerConfig,
    Mode,
    Provider,
    Security,
    SignIn,
)
from .sending_methods import CHOICE_FIELDS, SendingMethod, method_for
from .values import azure_environments

KEEP_STORED_HELP = "Stored. Leave blank to keep it, or type a new one."
# The secrets uploaded as a file rather than typed, and the files each input accepts.
KEY_FILE = "service_account_key"
UPLOADED_SECRETS = {
    KEY_FILE: "application/json,.json",
    **dict.fromkeys(CERTIFICATE_SECRETS, ".pem,.pfx,.p12"),
}
# The backup's "Use the backup connection when the primary fails" checkbox.
FAILOVER_SWITCH = "use_when_primary_fails"
# Every input whose value is secret: starred in error reports, never rendered back (a
# certificate's password opens its upload once and is never stored).
TYPED_SECRETS = (*SECRET_FIELDS, *CERTIFICATE_SECRETS.values())
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


def credential_choice() -> forms.ChoiceField:
    """An Azure app's Credential: Client Secret or Certificate."""
    return forms.ChoiceField(
        label="Credential",
        choices=CredentialType.choices,
        widget=forms.RadioSelect,
        # Not required: a post from before certificates existed keeps the stored choice.
        required=False,
    )


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


def secret_expiry_date() -> forms.DateField:
    """A client secret's optional "Secret expires on", read by the expiry radar."""
    return forms.DateField(
        label="Secret expires on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=EXPIRY_DATE_HELP,
    )


class SecretField(forms.CharField):
    """A password input that never renders its value back."""

    def __init__(self, label: str, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", False)
        widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
        super().__init__(label=label, widget=widget, **kwargs)


def clear_field(secret: str) -> str:
    """The name of a secret's "clear the stored value" checkbox."""
    return f"clear_{secret}"


def _secret_fields() -> dict[str, forms.Field]:
    """A never-filled input and a "clear" checkbox for every secret of the configuration."""
    fields: dict[str, forms.Field] = {}
    for name in SECRET_FIELDS:
        label = str(MailServerConfig._meta.get_field(name).verbose_name)
        label = label[:1].upper() + label[1:]
        if name in UPLOADED_SECRETS:
            fields[name] = forms.FileField(
                label=label,
                required=False,
                widget=forms.ClearableFileInput(attrs={"accept": UPLOADED_SECRETS[name]}),
            )
        else:
            fields[name] = SecretField(label, max_length=1024)
        # "Clear the stored password", "... client secret", "... JSON private key".
        words = " ".join(word if word.isupper() else word.lower() for word in label.split())
        fields[clear_field(name)] = forms.BooleanField(
            label=f"Clear the stored {words}", required=False
        )
    return fields


# The secrets' fields, declared from SECRET_FIELDS; MailServerForm inherits them.
SecretsForm = type(forms.Form)("SecretsForm", (forms.Form,), _secret_fields())


class MailServerForm(SecretsForm):
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

    oauth_provider = forms.ChoiceField(
        label="Mail Provider", choices=Provider.choices, widget=forms.RadioSelect
    )
    # Not required: a post (or an exported settings file) from before this choice existed
    # keeps the stored sign-in (clean_oauth_sign_in).
    oauth_sign_in = forms.ChoiceField(
        label="Sign-in", choices=SignIn.choices, widget=forms.RadioSelect, required=False
    )
    oauth_tenant_id = forms.CharField(label="Tenant ID", required=False, max_length=255)
    oauth_client_id = forms.CharField(label="Client ID", required=False, max_length=64)
    oauth_credential_type = credential_choice()
    oauth_certificate_password = certificate_password()
    oauth_azure_environment = forms.ChoiceField(label="Azure environment", choices=_azure_choices)
    google_client_id = forms.CharField(label="Client ID", required=False, max_length=255)

    api_provider = forms.ChoiceField(
        label="Mail Provider", choices=Provider.choices, widget=forms.RadioSelect
    )
    api_tenant_id = forms.CharField(label="Tenant ID", required=False, max_length=255)
    api_client_id = forms.CharField(label="Client ID", required=False, max_length=64)
    api_credential_type = credential_choice()
    api_certificate_password = certificate_password()
    api_client_secret_expires_on = secret_expiry_date()
    oauth_client_secret_expires_on = secret_expiry_date()
    api_azure_environment = forms.ChoiceField(label="Azure environment", choices=_azure_choices)

    # Backup Connection page only (removed from the primary's form in __init__).
    use_when_primary_fails = forms.BooleanField(
        label="Use the backup connection when the primary fails", required=False
    )

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

    # How the change history and the conflict message name a field: the page repeats
    # "Client ID", "Client Secret", "Tenant ID" and the like per section.
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
        self.service_account_info: dict[str, Any] | None = None
        # Each certificate uploaded and checked, by its secret's name.
        self.app_certificates: dict[str, AppCertificate] = {}
        for name in SECRET_FIELDS:
            if getattr(stored, name):
                if name == KEY_FILE:
                    help_text = "A key is stored. Upload a new file to replace it."
                elif name in CERTIFICATE_SECRETS:
                    help_text = "A certificate is stored. Upload a new file to replace it."
                else:
                    help_text = KEEP_STORED_HELP
                self.fields[name].help_text = help_text
                self.fields[name].widget.attrs["placeholder"] = "stored - leave blank to keep"
            else:
                self.fields[clear_field(name)].widget = forms.HiddenInput()
            self.fields[clear_field(name)].widget.attrs.setdefault("class", "form-check-input")

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
            if posted in {str(value) for value, _ in self.fields[name].choices}:
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
        data = super().clean()
        active = self.active_fields()
        required = self.required_fields()
        for name in active:
            if name in self.errors:
                continue
            value = data.get(name)
            if name in SECRET_FIELDS:
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
        self._check_secret_destinations(data)
        return data

    def _check_secret_destinations(self, data: dict[str, Any]) -> None:
        """A stored secret is kept (or tested) only while its destination is the saved one.

        Otherwise whoever may edit the form could send it to a server of their own: a
        blank secret field then asks for the secret again instead of meaning "stored".
        """
        for name, destination in self.method.secret_destinations.items():
            if name in self.errors or not self._keeps_stored(name):
                continue
            if any(d in self.errors for d in destination):
                continue  # the destination itself is wrong: that error comes first
            moved = [d for d in destination if _differs(data.get(d), getattr(self.stored, d))]
            if moved:
                changed = _join_words([str(self.fields[d].label) for d in moved])
                secret = str(self.fields[name].label).lower()
                self.add_error(
                    name,
                    ValidationError(
                        f"{changed} changed since the {secret} was saved: enter the {secret} "
                        f"again. A stored {secret} is only sent to where it was saved for.",
                        code="destination_changed",
                    ),
                )

    def _keeps_stored(self, name: str) -> bool:
        """The secret field is blank, so the stored secret would be used (or kept)."""
        if name in UPLOADED_SECRETS:
            typed = bool(self.cleaned_data.get(name))
        else:
            typed = bool(self.cleaned_data.get(name))
        cleared = bool(self.cleaned_data.get(clear_field(name)))
        return bool(getattr(self.stored, name)) and not typed and not cleared

    def stored_secrets_used(self) -> list[str]:
        """Audit names of the stored secrets a valid form relies on (left blank, not cleared)."""
        return [self.audit_name(name) for name in self.active_secrets() if self._keeps_stored(name)]

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
                and not self._will_have("password")
            ):
                # Signing in with an empty password fails at best, and counts as a failed
                # sign-in on servers that lock accounts.
                self.add_error(
                    "password",
                    "Enter the password for this username, or clear the Username to send "
                    "without authentication.",
                )
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

    def _will_have(self, name: str) -> bool:
        """The secret is typed now, or stored and kept (not cleared)."""
        return self._new_secret(name) or self._keeps_stored(name)

    def _new_secret(self, name: str) -> bool:
        return bool(self.cleaned_data.get(name))

    @sensitive_variables("value", "password")
    def _clean_secret(self, name: str, value: Any, *, required: bool) -> None:
        clearing = self.cleaned_data.get(clear_field(name))
        if name in CERTIFICATE_SECRETS and value:
            password = self.cleaned_data.get(CERTIFICATE_SECRETS[name]) or ""
            try:
                self.app_certificates[name] = parse_certificate_upload(
                    value.read(CERTIFICATE_MAX_BYTES + 1), password, now=timezone.now()
                )
            except ValidationError as err:
                self.add_error(name, err)
            return
        if name == KEY_FILE and value:
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
            if name in SECRET_FIELDS:
                new = self._secret_value(name)
                if new is None:
                    continue
                if new != getattr(config, name):
                    label = self.audit_name(name)
                    changed.append(f"{label} (changed)" if new else f"{label} (cleared)")
                    setattr(config, name, new)
                continue
            new = self.cleaned_data.get(name)
            if new is None and not MailServerConfig._meta.get_field(name).null:
                new = ""
            if new != getattr(config, name):
                changed.append(self.audit_name(name))
                setattr(config, name, new)
        if FAILOVER_SWITCH in self.fields:
            switch = bool(self.cleaned_data.get(FAILOVER_SWITCH))
            if switch != config.use_when_primary_fails:
                changed.append(f"{self.audit_name(FAILOVER_SWITCH)} ({'on' if switch else 'off'})")
                config.use_when_primary_fails = switch
        if self.service_account_info is not None:
            config.service_account_email = self.service_account_info["client_email"]
            config.service_account_client_id = self.service_account_info["client_id"]
        for name in CERTIFICATE_SECRETS:
            if name in self.active_fields():
                self._apply_certificate_facts(config, name)
        return changed

    def _apply_certificate_facts(self, config: MailServerConfig, name: str) -> None:
        """The stored certificate's subject, thumbprints and expiry follow the certificate."""
        certificate = self.app_certificates.get(name)
        if certificate is not None or not getattr(config, name):
            for column, fact in facts_of(name, certificate).items():
                setattr(config, column, fact)

    @sensitive_variables("value")
    def _secret_value(self, name: str) -> str | None:
        """The new secret, "" to clear it, or None to keep what is stored."""
        if name == KEY_FILE and self.service_account_info is not None:
            return json.dumps(self.service_account_info)
        if name in self.app_certificates:
            return self.app_certificates[name].pem
        value = self.cleaned_data.get(name)
        if name not in UPLOADED_SECRETS and value:
            return value
        if self.cleaned_data.get(clear_field(name)):
            return ""
        return None

    def audit_name(self, name: str) -> str:
        """The field's name in the change history: its label, with its section where shared."""
        return self.AUDIT_NAMES.get(name) or str(self.fields[name].label)

    @property
    def rejected_secrets(self) -> list[str]:
        """Secrets the admin typed in the active section, which are not rendered back.

        Named as in the audit ("Microsoft Graph Client Secret"): the page repeats
        "Client Secret". Secrets of sections not in use are neither saved nor named.
        """
        if not self.is_bound:
            return []
        rejected = [
            self.audit_name(name)
            for name in self.active_secrets()
            if self.data.get(name) or (name in self.files)
        ]
        for name, password in CERTIFICATE_SECRETS.items():
            if name in self.active_secrets() and self.data.get(password):
                rejected.append("the certificate password")
        return rejected

    @property
    def rejected_key_file(self) -> bool:
        """A file was chosen for the active section and is not kept after an error."""
        return any(name in self.files for name in self.active_secrets() if name in UPLOADED_SECRETS)

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


def _differs(new: Any, stored: Any) -> bool:
    if new in (None, "") and stored in (None, ""):
        return False
    # Host names and tenant IDs are case-insensitive: only another value is another place.
    if isinstance(new, str) and isinstance(stored, str):
        return new.casefold() != stored.casefold()
    return bool(new != stored)


def _join_words(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
