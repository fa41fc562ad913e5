"""Create the first admin account when no user exists yet (used by `make run`)."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse


class Command(BaseCommand):
    help = "Create the superuser 'admin' if there are no users; print how to sign in."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        port = os.environ.get("PORT", "8000")
        url = f"http://127.0.0.1:{port}{reverse('settings_app:mail_server')}"
        if user_model.objects.exists():
            self.stdout.write(f"Sign in at {url} with your existing account.")
            return
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        generated = not password
        password = password or secrets.token_urlsafe(12)
        if not generated:
            # The same rules as a password set on the page (AUTH_PASSWORD_VALIDATORS).
            try:
                validate_password(password, user_model(username="admin"))
            except ValidationError as err:
                raise CommandError(
                    "DJANGO_SUPERUSER_PASSWORD is not accepted: "
                    + " ".join(err.messages)
                    + " Set a stronger one, or unset it to get a random password printed once."
                ) from None
        user_model.objects.create_superuser(username="admin", email="", password=password)
        lines = [
            "",
            "=" * 64,
            "  First admin account created",
            f"  Sign in at   {url}",
            "  Username     admin",
        ]
        if generated:
            lines += [
                f"  Password     {password}",
                "  (shown once: write it down, or change it after signing in)",
            ]
        else:
            lines.append("  Password     the value of DJANGO_SUPERUSER_PASSWORD")
        lines += ["=" * 64, ""]
        self.stdout.write("\n".join(lines))
        if settings.DEBUG:
            self.stdout.write("DJANGO_DEBUG is on: do not expose this server.")
