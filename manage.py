#!/usr/bin/env python
"""Django's command-line utility; honours DJANGO_SETTINGS_MODULE."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailconfig.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from mailconfig.environment import BadVariable

    try:
        settings.INSTALLED_APPS  # noqa: B018 (reads the environment, once, before any command)
    except BadVariable as error:
        # A mistyped variable is the operator's to fix: one line, not a traceback.
        sys.exit(str(error))
    except (ImproperlyConfigured, ImportError):
        pass  # not a variable of ours: Django reports it its own way, as before
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
