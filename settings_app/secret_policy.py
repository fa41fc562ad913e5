"""What the Mail Server form does with each secret: keep, clear, replace, upload, re-ask.

A secret is never rendered back. Left blank, the stored one is kept (and Test Mail uses
it), but only while its destination (the server or tenant it goes to) is the one it was
saved for; "Clear" removes it; a typed value or an uploaded file (the Gmail key, a
certificate) replaces it, after the upload passed its checks. ``SecretPolicy`` holds
these rules for one bound form, so ``MailServerForm`` only says which secrets are active.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django import forms
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
from .models import SECRET_FIELDS, MailServerConfig, config_label

if TYPE_CHECKING:
    from .forms import MailServerForm

KEEP_STORED_HELP = "Stored. Leave blank to keep it, or type a new one."
# The secrets uploaded as a file rather than typed, and the files each input accepts.
KEY_FILE = "service_account_key"
UPLOADED_SECRETS = {
    KEY_FILE: "application/json,.json",
    **dict.fromkeys(CERTIFICATE_SECRETS, ".pem,.pfx,.p12"),
}
# Every input whose value is secret: starred in error reports, never rendered back (a
# certificate's password opens its upload once and is never stored).
TYPED_SECRETS = (*SECRET_FIELDS, *CERTIFICATE_SECRETS.values())


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


def secret_fields() -> dict[str, forms.Field]:
    """A never-filled input and a "clear" checkbox for every secret of the configuration,
    labelled as the model's column."""
    fields: dict[str, forms.Field] = {}
    for name in SECRET_FIELDS:
        label = config_label(name)
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


class SecretPolicy:
    """The secrets of one form: their inputs' hints, validation, and the values to store."""

    def __init__(self, form: MailServerForm, stored: MailServerConfig) -> None:
        self.form = form
        self.stored = stored
        # The Gmail key read from its upload, and each certificate uploaded and checked.
        self.service_account_info: dict[str, Any] | None = None
        self.app_certificates: dict[str, AppCertificate] = {}

    def dress_fields(self) -> None:
        """Say on each input whether a value is stored; hide "Clear" when nothing is."""
        fields = self.form.fields
        for name in SECRET_FIELDS:
            if getattr(self.stored, name):
                if name == KEY_FILE:
                    help_text = "A key is stored. Upload a new file to replace it."
                elif name in CERTIFICATE_SECRETS:
                    help_text = "A certificate is stored. Upload a new file to replace it."
                else:
                    help_text = KEEP_STORED_HELP
                fields[name].help_text = help_text
                fields[name].widget.attrs["placeholder"] = "stored - leave blank to keep"
            else:
                fields[clear_field(name)].widget = forms.HiddenInput()
            fields[clear_field(name)].widget.attrs.setdefault("class", "form-check-input")

    # -- validation -------------------------------------------------------------------

    @sensitive_variables("value", "password")
    def clean(self, name: str, value: Any, *, required: bool) -> None:
        """Check a secret's new value (an upload is opened and checked now); a required
        secret must be typed or stored and not cleared."""
        form = self.form
        clearing = form.cleaned_data.get(clear_field(name))
        if name in CERTIFICATE_SECRETS and value:
            password = form.cleaned_data.get(CERTIFICATE_SECRETS[name]) or ""
            try:
                self.app_certificates[name] = parse_certificate_upload(
                    value.read(CERTIFICATE_MAX_BYTES + 1), password, now=timezone.now()
                )
            except ValidationError as err:
                form.add_error(name, err)
            return
        if name == KEY_FILE and value:
            try:
                self.service_account_info = validators.parse_service_account_key(
                    value.read(validators.SERVICE_ACCOUNT_MAX_BYTES + 1)
                )
            except ValidationError as err:
                form.add_error(name, err)
            return
        will_have_value = bool(value) or (bool(getattr(self.stored, name)) and not clearing)
        if required and not will_have_value:
            form.add_error(name, ValidationError("This field is required.", code="required"))

    def check_destinations(self, data: dict[str, Any]) -> None:
        """A stored secret is kept (or tested) only while its destination is the saved one.

        Otherwise whoever may edit the form could send it to a server of their own: a
        blank secret field then asks for the secret again instead of meaning "stored".
        """
        form = self.form
        for name, destination in form.method.secret_destinations.items():
            if name in form.errors or not self.keeps_stored(name):
                continue
            if any(d in form.errors for d in destination):
                continue  # the destination itself is wrong: that error comes first
            moved = [d for d in destination if _differs(data.get(d), getattr(self.stored, d))]
            if moved:
                changed = _join_words([str(form.fields[d].label) for d in moved])
                secret = str(form.fields[name].label).lower()
                form.add_error(
                    name,
                    ValidationError(
                        f"{changed} changed since the {secret} was saved: enter the {secret} "
                        f"again. A stored {secret} is only sent to where it was saved for.",
                        code="destination_changed",
                    ),
                )

    def keeps_stored(self, name: str) -> bool:
        """The secret field is blank, so the stored secret would be used (or kept)."""
        typed = bool(self.form.cleaned_data.get(name))
        cleared = bool(self.form.cleaned_data.get(clear_field(name)))
        return bool(getattr(self.stored, name)) and not typed and not cleared

    def is_new(self, name: str) -> bool:
        """A value was typed or uploaded for the secret."""
        return bool(self.form.cleaned_data.get(name))

    # -- applying ---------------------------------------------------------------------

    @sensitive_variables("value")
    def new_value(self, name: str) -> str | None:
        """The new secret, "" to clear it, or None to keep what is stored."""
        if name == KEY_FILE and self.service_account_info is not None:
            return json.dumps(self.service_account_info)
        if name in self.app_certificates:
            return self.app_certificates[name].pem
        value = self.form.cleaned_data.get(name)
        if name not in UPLOADED_SECRETS and value:
            return value
        if self.form.cleaned_data.get(clear_field(name)):
            return ""
        return None

    def apply_facts(self, config: MailServerConfig, active: list[str]) -> None:
        """What is read from an upload follows it: the Gmail key's account and client ID,
        a certificate's subject, thumbprints and expiry."""
        if self.service_account_info is not None:
            config.service_account_email = self.service_account_info["client_email"]
            config.service_account_client_id = self.service_account_info["client_id"]
        for name in CERTIFICATE_SECRETS:
            if name not in active:
                continue
            certificate = self.app_certificates.get(name)
            if certificate is not None or not getattr(config, name):
                for column, fact in facts_of(name, certificate).items():
                    setattr(config, column, fact)

    # -- after an invalid post ----------------------------------------------------------

    def rejected(self, active_secrets: list[str]) -> list[str]:
        """Secrets typed in the active section, which are not rendered back (audit names)."""
        form = self.form
        if not form.is_bound:
            return []
        rejected = [
            form.audit_name(name)
            for name in active_secrets
            if form.data.get(name) or (name in form.files)
        ]
        for name, password in CERTIFICATE_SECRETS.items():
            if name in active_secrets and form.data.get(password):
                rejected.append("the certificate password")
        return rejected

    def rejected_upload(self, active_secrets: list[str]) -> bool:
        """A file was chosen for the active section and is not kept after an error."""
        return any(name in self.form.files for name in active_secrets if name in UPLOADED_SECRETS)


def _differs(new: Any, stored: Any) -> bool:
    if new in (None, "") and stored in (None, ""):
        return False
    # Host names and tenant IDs are case-insensitive: only another value is another place.
    if isinstance(new, str) and isinstance(stored, str):
        return new.casefold() != stored.casefold()
    return bool(new != stored)


def _join_words(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
