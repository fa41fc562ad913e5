"""Django settings for the mail server settings console.

Every value an operator may change is read from the environment here, and every
provider endpoint is written out below so it can be overridden in one place
(an operator's own settings module can start with
``from mailconfig.settings import *``).
"""

import secrets
from datetime import timedelta
from pathlib import Path

from mailconfig.admins import StoredAdmins
from mailconfig.environment import Environment
from mailconfig.keyfile import keep_private, private_directory, read_or_create

BASE_DIR = Path(__file__).resolve().parent.parent

# Every variable is typed and checked as it is read: a bad value stops start-up with
# one line naming it (docs/configuration.md lists them all).
env = Environment()

# Data directory: SQLite database, generated secret key and encryption key file.
DATA_DIR = env.directory("MAILCONFIG_DATA_DIR", BASE_DIR / "data", mode=0o700)
private_directory(DATA_DIR)  # 0700: the database and keys are nobody else's business


# Generated once so sessions survive restarts; 0600 because it signs sessions.
# 50 characters at least: what Django's deploy check asks of a signing key.
SECRET_KEY = (
    env.text("DJANGO_SECRET_KEY", min_length=50, secret=True)
    or read_or_create(DATA_DIR / "secret_key", lambda: secrets.token_urlsafe(64)).strip()
)
DEBUG = env.boolean("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env.host_names("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env.origins("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "crispy_forms",
    "crispy_bootstrap5",
    "axes",  # before settings_app: its failure count is known when ours logs the attempt
    "settings_app",
    "oauth",
    "sender",
    # Django's tasks framework (the backport on 5.2) and its database backend. After
    # "sender", whose db_worker command wraps the backend's to recover stalled messages.
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    # First: /healthz, /readyz and /metrics answer a probe addressed to this server's IP
    # over plain HTTP, before the HTTPS redirect and the ALLOWED_HOSTS check (docs/operations.md).
    "mailconfig.probes.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Every view needs a signed-in user unless marked login_not_required ...
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # ... and, for the console's own views, the mail-server permission.
    "settings_app.middleware.ConsoleAccessMiddleware",
    "settings_app.middleware.SecretKeyErrorMiddleware",
    "settings_app.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into the page saying until when.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mailconfig.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # The "Mail is not being delivered" banner on every console page.
                "settings_app.context_processors.mail_incident",
                # "No mail worker is running" while mail waits, on every console page.
                "settings_app.context_processors.no_worker",
                "settings_app.context_processors.basic_auth_sunset",
                # The expiry radar's banner on every console page.
                "settings_app.context_processors.expiry_banner",
            ],
        },
    },
]

WSGI_APPLICATION = "mailconfig.wsgi.application"

DATABASES = {
    "default": env.database(
        "DATABASE_URL",
        f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
        conn_max_age=env.integer(
            "DJANGO_CONN_MAX_AGE", 0, minimum=0, maximum=86400, unit="seconds"
        ),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Take the write lock at BEGIN, so concurrent saves queue instead of failing "locked".
    # WAL: the web server reads while the mail worker writes (two processes under make run),
    # and a commit costs no fsync of its own (synchronous=NORMAL is still crash-safe).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Open the file read-write, never create it (Django 5.2 opens SQLite names as URIs):
    # `manage.py migrate` (run by `make run`) creates it, so a file gone missing later is
    # an error page, not a new empty database that looks like "nothing configured".
    _sqlite_name = str(DATABASES["default"].get("NAME") or "")
    if _sqlite_name and _sqlite_name != ":memory:" and not _sqlite_name.startswith("file:"):
        # 0600, with the journal files SQLite makes beside it (migrate creates it so).
        for _suffix in ("", "-wal", "-shm"):
            keep_private(Path(_sqlite_name + _suffix))
    if _sqlite_name and _sqlite_name != ":memory:" and not _sqlite_name.startswith("file:"):
        DATABASES["default"]["NAME"] = Path(_sqlite_name).resolve().as_uri() + "?mode=rw"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Sign-in throttling (django-axes): the first backend refuses a locked-out username or
# address before any password is checked; failures are counted in the database, so
# every process sees them. Django's admin sign-in goes through the same authenticate().
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# A username is locked from one address only, so nobody elsewhere can lock the admin out;
# an address is locked for every username after its own, higher limit (settings_app.sign_in).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_HANDLER = "settings_app.sign_in.PairAndAddressLockout"
AXES_FAILURE_LIMIT = env.integer(
    "DJANGO_LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000, unit="failed sign-ins"
)
MAILCONFIG_LOGIN_ADDRESS_FAILURE_LIMIT = env.integer(
    "DJANGO_LOGIN_ADDRESS_FAILURE_LIMIT", 20, minimum=1, maximum=100000, unit="failed sign-ins"
)
AXES_COOLOFF_TIME = timedelta(
    minutes=env.integer(
        "DJANGO_LOGIN_LOCKOUT_MINUTES", 15, minimum=1, maximum=525600, unit="minutes"
    )
)
# Attempts during a lockout neither count nor extend it: the time the page names holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The client address by the console's trusted-proxy rule (DJANGO_TRUSTED_PROXIES).
AXES_CLIENT_IP_CALLABLE = "mailconfig.client_address.client_ip"
AXES_LOCKOUT_CALLABLE = "settings_app.sign_in.locked_out_response"
# settings_app.sign_in logs each attempt; no start-up banner from axes on every command.
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.time_zone("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# A context path behind a reverse proxy (for example "/mailconsole").
FORCE_SCRIPT_NAME = env.script_name("FORCE_SCRIPT_NAME")

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing root
# Serve straight from the app's static folders, so `make run` needs no collectstatic.
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "settings_app:mail_server"
LOGOUT_REDIRECT_URL = "login"

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

SESSION_COOKIE_HTTPONLY = True
# An admin console: sessions end after a working day rather than Django's two weeks.
SESSION_COOKIE_AGE = env.integer(
    "DJANGO_SESSION_AGE", 8 * 3600, minimum=60, maximum=31536000, unit="seconds"
)
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Behind a TLS-terminating proxy: DJANGO_HTTPS=true turns on secure cookies,
# HTTPS redirect and HSTS; DJANGO_TRUST_X_FORWARDED_PROTO=true trusts the proxy's header.
if env.boolean("DJANGO_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Reverse proxies whose X-Forwarded-For is believed for the audit's source address.
# Empty (the default): the header is ignored, since any client can send it.
MAILCONFIG_TRUSTED_PROXIES = env.networks("DJANGO_TRUSTED_PROXIES")

# Read whether or not HTTPS is on, so a mistyped HSTS value is caught before it matters.
_hsts_seconds = env.integer(
    "DJANGO_HSTS_SECONDS", 31536000, minimum=0, maximum=63072000, unit="seconds"
)
_hsts_subdomains = env.boolean("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
_hsts_preload = env.boolean("DJANGO_HSTS_PRELOAD", True)
if env.boolean("DJANGO_HTTPS", False):
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = _hsts_seconds
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _hsts_subdomains
    SECURE_HSTS_PRELOAD = _hsts_preload

# Error reports star typed secrets for every request, also when the failure comes
# before a view's sensitive_post_parameters (a middleware, the database).
DEFAULT_EXCEPTION_REPORTER_FILTER = "settings_app.report_filter.ConsoleExceptionReporterFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"require_debug_false": {"()": "django.utils.log.RequireDebugFalse"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "null": {"class": "logging.NullHandler"},
        # Django's error mails to the Admin Mail Address: through EMAIL_BACKEND (queued,
        # never inline: no email_backend here), the same error at most once in 10 minutes.
        "mail_admins": {
            "level": "ERROR",
            "filters": ["require_debug_false"],
            "class": "settings_app.report_mail.ThrottledAdminEmailHandler",
            "include_html": True,
            "interval": 600,
        },
    },
    "root": {"handlers": ["console"], "level": env.log_level("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        # Replaces Django's default handlers; records still reach the root console.
        "django": {"handlers": ["mail_admins"], "level": "INFO"},
        # A request with a foreign Host header is noise, not an error to mail (Django's advice).
        "django.security.DisallowedHost": {"handlers": ["null"], "propagate": False},
    },
}

# Error-mail throttle state (settings_app.report_mail): a file cache holds it across the
# processes of this machine; point "error_reports" at a shared cache for several machines.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "error_reports": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(DATA_DIR / "cache" / "error-reports"),
    },
}

# --- Mail server console -------------------------------------------------------

# Every mail the product sends goes through the stored configuration.
EMAIL_BACKEND = "sender.backend.EmailBackend"
# Empty on purpose: a message without a sender gets the stored From Address.
DEFAULT_FROM_EMAIL = ""
SERVER_EMAIL = ""
# mail_admins() and Django's error mails go to the stored Admin Mail Address.
ADMINS = StoredAdmins()


# Outbox: send_mail() stores the message and a worker (manage.py db_worker) sends it.
# "immediate" sends within send_mail() instead (tests, sendtestemail --immediate).
MAILCONFIG_DELIVERY = env.choice("MAILCONFIG_DELIVERY", "queued", ("queued", "immediate"))
# Seconds to wait before each retry of a temporary failure; after the last, Failed
# (empty: no retries).
MAILCONFIG_RETRY_SCHEDULE = env.seconds_list(
    "MAILCONFIG_RETRY_SCHEDULE", "60,300,900,3600,14400", maximum=10**7
)
# A worker holds a message this long while sending it; after that (the worker died),
# the message is tried again.
MAILCONFIG_SEND_LEASE = env.seconds("MAILCONFIG_SEND_LEASE", 300.0, maximum=86400)
# Messages a worker claims, sends over its open connection and records at a time. A
# worker killed mid-batch may send again the batch's messages it sent but had not
# recorded (at most 50 ms' worth); chosen by measurement (docs/development.md).
MAILCONFIG_BATCH_SIZE = env.integer(
    "MAILCONFIG_BATCH_SIZE", 50, minimum=1, maximum=10000, unit="messages"
)
# MAILCONFIG_FAILED_BODY_DAYS (how long a Failed message keeps its body): with the
# Email Log's retention below.

# Seconds a message may keep failing temporarily on the primary connection before it is
# sent through the backup (a permanent failure goes to the backup at once).
MAILCONFIG_FAILOVER_AFTER = env.seconds(
    "MAILCONFIG_FAILOVER_AFTER", 600.0, maximum=10**7, zero=True
)

TASKS = {
    "default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]},
}
# A worker not seen for this many seconds has stopped: when mail waits and none is seen,
# every console page says so (sender/worker_outage.py). Workers beat every few seconds.
MAILCONFIG_WORKER_STALE_AFTER = env.seconds("MAILCONFIG_WORKER_STALE_AFTER", 120.0, maximum=86400)

# Fernet keys for stored secrets, newest first. Unset: a key file in DATA_DIR.
MAILCONFIG_ENCRYPTION_KEYS = env.fernet_keys("MAILCONFIG_ENCRYPTION_KEYS")
MAILCONFIG_KEY_FILE = DATA_DIR / "encryption.key"

# CA bundle for outbound TLS (SMTP, Microsoft, Google). None: the system store.
MAILCONFIG_CA_FILE = env.readable_file("MAILCONFIG_CA_FILE")
# Seconds allowed for connecting and for every SMTP command / HTTP request.
MAILCONFIG_TIMEOUT = env.seconds("MAILCONFIG_TIMEOUT", 15.0, maximum=3600)
# Seconds one message may take in normal sending, every step included (connecting,
# signing in, the token, the message), however slowly the server answers.
MAILCONFIG_SEND_TIMEOUT = env.seconds("MAILCONFIG_SEND_TIMEOUT", 60.0, maximum=3600)
# Seconds an SMTP server may take to confirm a message after its last line (RFC 5321
# suggests 10 minutes: servers check content then). Still within MAILCONFIG_SEND_TIMEOUT
# for the whole message, so with the defaults the wait ends when the message's 60 s do.
MAILCONFIG_DATA_TIMEOUT = env.seconds("MAILCONFIG_DATA_TIMEOUT", 600.0, maximum=3600)
# Public base URL of this console (https://mail.example.com/console), used to build
# the OAuth redirect URI instead of trusting the request's Host header.
MAILCONFIG_PUBLIC_URL = env.url("MAILCONFIG_PUBLIC_URL")
# The name the SMTP transport gives in EHLO; empty: this machine's name, looked up once.
MAILCONFIG_EHLO_NAME = env.ehlo_name("MAILCONFIG_EHLO_NAME")

# Email Log retention (manage.py purge_email_log): finished messages leave the log after
# this many days; a Failed message's encrypted content, kept so it can be resent, goes
# after MAILCONFIG_FAILED_BODY_DAYS (a Sent message's content is dropped at delivery).
MAILCONFIG_LOG_RETENTION_DAYS = env.integer(
    "MAILCONFIG_LOG_RETENTION_DAYS", 30, minimum=0, maximum=36500, unit="days"
)
MAILCONFIG_FAILED_BODY_DAYS = env.integer(
    "MAILCONFIG_FAILED_BODY_DAYS", 7, minimum=0, maximum=36500, unit="days"
)


# Failure alerts (sender/incidents.py): an incident opens at a permanent failure, at a
# grant that needs authorization again, or after this many temporary failures in a row.
MAILCONFIG_ALERT_AFTER_TRANSIENT_FAILURES = env.integer(
    "MAILCONFIG_ALERT_AFTER_TRANSIENT_FAILURES", 3, minimum=1, maximum=1000, unit="failures"
)
# An optional webhook: a signed JSON POST when an incident opens and when it closes
# (sender/webhook.py; docs/operations.md says how to verify the signature).
MAILCONFIG_ALERT_WEBHOOK_URL = env.url("MAILCONFIG_ALERT_WEBHOOK_URL")
# 16 characters at least: it is the HMAC key receivers trust.
MAILCONFIG_ALERT_WEBHOOK_SECRET = env.text(
    "MAILCONFIG_ALERT_WEBHOOK_SECRET", min_length=16, secret=True
)
# Seconds one POST may take; then seconds before each retry of a failed POST.
MAILCONFIG_ALERT_WEBHOOK_TIMEOUT = env.seconds(
    "MAILCONFIG_ALERT_WEBHOOK_TIMEOUT", 10.0, maximum=3600
)
MAILCONFIG_ALERT_WEBHOOK_RETRY_SCHEDULE = env.seconds_list(
    "MAILCONFIG_ALERT_WEBHOOK_RETRY_SCHEDULE", "30,120,600,1800", maximum=10**7
)

# Prometheus metrics at /metrics (sender/metrics.py): off (404) unless a token is set; then
# a scrape must send "Authorization: Bearer <token>".
# 24 characters at least, or it would not keep /metrics private.
MAILCONFIG_METRICS_TOKEN = env.text("MAILCONFIG_METRICS_TOKEN", min_length=24, secret=True)

# One row per Azure cloud: everything that changes together when the cloud changes.
# smtp_scope: delegated SMTP OAuth (an account signs in); smtp_app_scope: app-only SMTP
# OAuth (client credentials, no sign-in), Exchange Online's resource in that cloud.
MAILCONFIG_AZURE_ENVIRONMENTS = {
    "azure": {
        "label": "Azure Cloud",
        "authority_host": "https://login.microsoftonline.com",
        "graph_host": "https://graph.microsoft.com",
        "smtp_host": "smtp.office365.com",
        "smtp_scope": "https://outlook.office.com/SMTP.Send",
        "smtp_app_scope": "https://outlook.office365.com/.default",
    },
    "azure_us_government": {
        "label": "Azure US Government",
        "authority_host": "https://login.microsoftonline.us",
        "graph_host": "https://graph.microsoft.us",
        "smtp_host": "smtp.office365.us",
        "smtp_scope": "https://outlook.office365.us/SMTP.Send",
        "smtp_app_scope": "https://outlook.office365.us/.default",
    },
    "azure_us_government_dod": {
        "label": "Azure US Government (DoD)",
        "authority_host": "https://login.microsoftonline.us",
        "graph_host": "https://dod-graph.microsoft.us",
        "smtp_host": "smtp.office365.us",
        "smtp_scope": "https://outlook-dod.office365.us/SMTP.Send",
        "smtp_app_scope": "https://outlook-dod.office365.us/.default",
    },
    "azure_china": {
        "label": "Azure China (21Vianet)",
        "authority_host": "https://login.chinacloudapi.cn",
        "graph_host": "https://microsoftgraph.chinacloudapi.cn",
        "smtp_host": "smtp.partner.outlook.cn",
        "smtp_scope": "https://partner.outlook.cn/SMTP.Send",
        "smtp_app_scope": "https://partner.outlook.cn/.default",
    },
}
MAILCONFIG_DEFAULT_AZURE_ENVIRONMENT = "azure"

MAILCONFIG_GOOGLE = {
    "auth_uri": "https://accounts.google.com/o/oauth2/v2/auth",
    "token_uri": "https://oauth2.googleapis.com/token",
    "revoke_uri": "https://oauth2.googleapis.com/revoke",
    "gmail_api": "https://gmail.googleapis.com",
    "smtp_host": "smtp.gmail.com",
    "smtp_scope": "https://mail.google.com/",
}
