"""``manage.py sendtestemail``: Django's command, plus ``--immediate`` to send now.

Without it the test message is queued like any other (a worker sends it, the
Email Log shows it); with it, it is sent within the command and an error is
printed at once.
"""

from __future__ import annotations

import socket
from typing import Any

from django.core.mail import get_connection, mail_admins, mail_managers, send_mail
from django.core.management.base import CommandParser
from django.core.management.commands.sendtestemail import Command as DjangoCommand
from django.utils import timezone


class Command(DjangoCommand):
    help = DjangoCommand.help + " Queued like all mail unless --immediate is given."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--immediate",
            action="store_true",
            help="Send now, within this command, instead of queueing for a worker.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        connection = get_connection(immediate=True) if options["immediate"] else None
        subject = f"Test email from {socket.gethostname()} on {timezone.now()}"
        if options["email"]:
            send_mail(
                subject=subject,
                message="If you're reading this, it was successful.",
                from_email=None,
                recipient_list=options["email"],
                connection=connection,
            )
        if options["managers"]:
            mail_managers(
                subject, "This email was sent to the site managers.", connection=connection
            )
        if options["admins"]:
            mail_admins(subject, "This email was sent to the site admins.", connection=connection)
        if connection is None:
            self.stdout.write("Queued; a worker (manage.py db_worker) sends it.")
