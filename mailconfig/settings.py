"""Django settings for the mail server settings console.

Every value an operator may change is read from the environment here, and every
provider endpoint is written out below so it can be overridden in one place
(an operator's own settings module can start with
``from mailconfig.settings import *``).
"""

import ipaddress
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from mailconfig.admins import StoredAdmins
from mailconfig.keyfile import read_or_create

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    """Read a yes/no environment variable ("1", "true", "yes", "on" mean yes)."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    """Read a comma-separated environment variable into a list of non-empty items."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Data directory: SQLite database, generated secret key and encryption key file.
DATA_DIR = Path(os.environ.get("MAILCONFIG_DATA_DIR", BASE_DIR / "data")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


# Generated once so sessions survive restarts; 0600 because it signs sessions.
SECRET_KEY = (
    os.environ.get("DJANGO_SECRET_KEY")
    or read_or_create(DATA_DIR / "secret_key", lambda: secrets.token_urlsafe(64)).strip()
)
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

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
    # over plain HTTP, before the HTTPS redirect and the ALLOWED_HOSTS check (README).
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
                "settings_app.context_processors.basic_auth_sunset",
                # The expiry radar's banner on every console page.
                "settings_app.context_processors.expiry_banner",
            ],
        },
    },
]

WSGI_APPLICATION = "mailconfig.wsgi.application"

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DJANGO_CONN_MAX_AGE", "0")),
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
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one reaching the limit locks
AXES_FAILURE_LIMIT = int(os.environ.get("DJANGO_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("DJANGO_LOGIN_LOCKOUT_MINUTES", "15")))
# Attempts during a lockout neither count nor extend it: the time the page names holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The client address by the console's trusted-proxy rule (DJANGO_TRUSTED_PROXIES).
AXES_CLIENT_IP_CALLABLE = "mailconfig.client_address.client_ip"
AXES_LOCKOUT_CALLABLE = "settings_app.sign_in.locked_out_response"
# settings_app.sign_in logs each attempt; no start-up banner from axes on every command.
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# A context path behind a reverse proxy (for example "/mailconsole").
FORCE_SCRIPT_NAME = os.environ.get("FORCE_SCRIPT_NAME") or None

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
SESSION_COOKIE_AGE = int(os.environ.get("DJANGO_SESSION_AGE", str(8 * 3600)))
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Behind a TLS-terminating proxy: DJANGO_HTTPS=true turns on secure cookies,
# HTTPS redirect and HSTS; DJANGO_TRUST_X_FORWARDED_PROTO=true trusts the proxy's header.
if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def trusted_proxies(name: str) -> list[str]:
    """Read proxy addresses or networks (10.0.0.5, 10.0.0.0/24), refusing anything else."""
    values = env_list(name)
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {value!r} is not an IP address or network. Use comma-separated "
                "addresses or CIDR networks, for example 10.0.0.5,192.0.2.0/24."
            ) from None
    return values


# Reverse proxies whose X-Forwarded-For is believed for the audit's source address.
# Empty (the default): the header is ignored, since any client can send it.
MAILCONFIG_TRUSTED_PROXIES = trusted_proxies("DJANGO_TRUSTED_PROXIES")

if env_bool("DJANGO_HTTPS"):
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)

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
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
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


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """Read an environment variable that must be one of ``choices``."""
    value = (os.environ.get(name) or default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return value


def env_seconds(name: str, default: str) -> list[float]:
    """Read a comma-separated list of seconds (each >= 0)."""
    try:
        values = [float(item) for item in env_list(name, default)]
    except ValueError:
        values = [-1.0]
    if any(not 0 <= value < 10**7 for value in values):
        raise ImproperlyConfigured(
            f"{name} must be comma-separated numbers of seconds, for example 60,300,900."
        )
    return values


# Outbox: send_mail() stores the message and a worker (manage.py db_worker) sends it.
# "immediate" sends within send_mail() instead (tests, sendtestemail --immediate).
MAILCONFIG_DELIVERY = env_choice("MAILCONFIG_DELIVERY", "queued", ("queued", "immediate"))
# Seconds to wait before each retry of a temporary failure; after the last, Failed
# (empty: no retries).
MAILCONFIG_RETRY_SCHEDULE = env_seconds("MAILCONFIG_RETRY_SCHEDULE", "60,300,900,3600,14400")
# A worker holds a message this long while sending it; after that (the worker died),
# the message is tried again.
MAILCONFIG_SEND_LEASE = (env_seconds("MAILCONFIG_SEND_LEASE", "300") or [300.0])[0]
# MAILCONFIG_FAILED_BODY_DAYS (how long a Failed message keeps its body): with the
# Email Log's retention below.

# Seconds a message may keep failing temporarily on the primary connection before it is
# sent through the backup (a permanent failure goes to the backup at once).
MAILCONFIG_FAILOVER_AFTER = (env_seconds("MAILCONFIG_FAILOVER_AFTER", "600") or [600.0])[0]

TASKS = {
    "default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]},
}

# Fernet keys for stored secrets, newest first. Unset: a key file in DATA_DIR.
MAILCONFIG_ENCRYPTION_KEYS = env_list("MAILCONFIG_ENCRYPTION_KEYS")
MAILCONFIG_KEY_FILE = DATA_DIR / "encryption.key"

# CA bundle for outbound TLS (SMTP, Microsoft, Google). None: the system store.
MAILCONFIG_CA_FILE = os.environ.get("MAILCONFIG_CA_FILE") or None
# Seconds allowed for connecting and for every SMTP command / HTTP request.
MAILCONFIG_TIMEOUT = float(os.environ.get("MAILCONFIG_TIMEOUT", "15"))
# Seconds one message may take in normal sending, every step included (connecting,
# signing in, the token, the message), however slowly the server answers.
MAILCONFIG_SEND_TIMEOUT = float(os.environ.get("MAILCONFIG_SEND_TIMEOUT", "60"))
# Public base URL of this console (https://mail.example.com/console), used to build
# the OAuth redirect URI instead of trusting the request's Host header.
MAILCONFIG_PUBLIC_URL = os.environ.get("MAILCONFIG_PUBLIC_URL") or None


def env_days(name: str, default: int) -> int:
    """Read a whole number of days (0 or more), refusing anything else with a clear message."""
    value = os.environ.get(name, "").strip() or str(default)
    if not (value.isascii() and value.isdigit()):
        raise ImproperlyConfigured(f"{name}: {value!r} is not a whole number of days (0 or more).")
    return int(value)


# Email Log retention (manage.py purge_email_log): finished messages leave the log after
# this many days; a Failed message's encrypted content, kept so it can be resent, goes
# after MAILCONFIG_FAILED_BODY_DAYS (a Sent message's content is dropped at delivery).
MAILCONFIG_LOG_RETENTION_DAYS = env_days("MAILCONFIG_LOG_RETENTION_DAYS", 30)
MAILCONFIG_FAILED_BODY_DAYS = env_days("MAILCONFIG_FAILED_BODY_DAYS", 7)


def env_count(name: str, default: int) -> int:
    """Read a whole number of 1 or more, refusing anything else with a clear message."""
    value = os.environ.get(name, "").strip() or str(default)
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise ImproperlyConfigured(f"{name}: {value!r} is not a whole number of 1 or more.")
    return int(value)


# Failure alerts (sender/incidents.py): an incident opens at a permanent failure, at a
# grant that needs authorization again, or after this many temporary failures in a row.
MAILCONFIG_ALERT_AFTER_TRANSIENT_FAILURES = env_count(
    "MAILCONFIG_ALERT_AFTER_TRANSIENT_FAILURES", 3
)
# An optional webhook: a signed JSON POST when an incident opens and when it closes
# (sender/webhook.py; the README says how to verify the signature).
MAILCONFIG_ALERT_WEBHOOK_URL = os.environ.get("MAILCONFIG_ALERT_WEBHOOK_URL") or None
MAILCONFIG_ALERT_WEBHOOK_SECRET = os.environ.get("MAILCONFIG_ALERT_WEBHOOK_SECRET") or ""
# Seconds one POST may take; then seconds before each retry of a failed POST.
MAILCONFIG_ALERT_WEBHOOK_TIMEOUT = (
    env_seconds("MAILCONFIG_ALERT_WEBHOOK_TIMEOUT", "10") or [10.0]
)[0]
MAILCONFIG_ALERT_WEBHOOK_RETRY_SCHEDULE = env_seconds(
    "MAILCONFIG_ALERT_WEBHOOK_RETRY_SCHEDULE", "30,120,600,1800"
)

# Prometheus metrics at /metrics (sender/metrics.py): off (404) unless a token is set; then
# a scrape must send "Authorization: Bearer <token>".
MAILCONFIG_METRICS_TOKEN = os.environ.get("MAILCONFIG_METRICS_TOKEN", "").strip()
if MAILCONFIG_METRICS_TOKEN and len(MAILCONFIG_METRICS_TOKEN) < 24:
    raise ImproperlyConfigured(
        "MAILCONFIG_METRICS_TOKEN is too short to keep /metrics private: use 24 characters "
        "or more, for example from: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    )

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
