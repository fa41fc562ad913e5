"""gunicorn's settings for the console: ``gunicorn -c python:mailconfig.gunicorn_conf mailconfig.wsgi``.

``make run`` starts gunicorn this way (``scripts/serve.py``). In production run the same
command and change what differs on its command line (``--bind 0.0.0.0:8000``) or in
``GUNICORN_CMD_ARGS``; options given there win over these.
"""

import os

from mailconfig.environment import Environment

bind = [f"127.0.0.1:{os.environ.get('PORT', '8000')}"]
# Processes x threads: a Test Mail or Check permissions waits on a remote server for up to
# MAILCONFIG_TIMEOUT, and other admins' pages must not queue behind it. Read like every
# other variable, so a bad value is refused in one line naming it.
workers = Environment().integer(
    "WEB_CONCURRENCY", 2, minimum=1, maximum=1000, unit="web server processes"
)
worker_class = "gthread"
threads = 4
# A request runs at most MAILCONFIG_TIMEOUT (15 s by default) plus its page: let it finish
# on a graceful stop or reload.
graceful_timeout = 30
# Requests and errors on the console (stderr), as runserver showed them.
accesslog = "-"
errorlog = "-"
# gunicorn would otherwise believe X-Forwarded-Proto from 127.0.0.1 on its own; whether a
# proxy's header counts is the console's one switch, DJANGO_TRUST_X_FORWARDED_PROTO.
forwarded_allow_ips = ""
# gunicorn's runtime control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl):
# a second console on the machine would take it over. Nothing here uses it.
control_socket_disable = True
