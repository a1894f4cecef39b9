"""mdmportal settings: one file, configured by environment variables (django-environ).

Harmless values have development defaults. Secrets have none: with DEBUG off (the default) the
process stops with a message naming the missing variable. With DEBUG=true (which `make run` and
the tests set), development secrets are created once under var/ and reused.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from celery.schedules import crontab
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("MDMPORTAL_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.FileAwareEnv()
environ.FileAwareEnv.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
# The SECRET_KEY value .env.example ships with: a copy of it that was never edited.
SECRET_KEY_PLACEHOLDER = "change-me-to-50-random-characters"


def _development_secrets() -> dict[str, str]:
    """Secrets for the embedded default, made on first start and kept in var/."""
    path = VAR_DIR / "development-secrets.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    made = {
        "SECRET_KEY": lambda: secrets.token_urlsafe(50),
        "SECRETS_ENCRYPTION_KEYS": lambda: Fernet.generate_key().decode(),
        "LICENCE_SIGNING_KEY": lambda: base64.b64encode(
            Ed25519PrivateKey.generate().private_bytes_raw()
        ).decode(),
    }
    missing = {name: make() for name, make in made.items() if name not in known}
    if missing:
        known |= missing
        path.write_text(json.dumps(known))
        path.chmod(0o600)
    return known


def _secret(name: str) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return _development_secrets()[name]
    raise ImproperlyConfigured(
        f"{name} is not set. Set it (or {name}_FILE) in the environment: "
        "production never runs on development secrets."
    )


SECRET_KEY = _secret("SECRET_KEY")
if SECRET_KEY == SECRET_KEY_PLACEHOLDER:
    raise ImproperlyConfigured(
        "SECRET_KEY is still the placeholder of .env.example. Set it to 50 random characters: "
        'python -c "import secrets; print(secrets.token_urlsafe(50))"'
    )
# Fernet keys that encrypt server tokens and private keys at rest, newest first: the first
# encrypts, all decrypt, so a new key can be put in front and the old one dropped after
# `manage.py rotate_encryption_keys`.
SECRETS_ENCRYPTION_KEYS = [k.strip() for k in _secret("SECRETS_ENCRYPTION_KEYS").split(",") if k]

# Subscription licences are signed by the vendor (Ed25519); the portal only verifies them.
# The embedded default signs its own with a development key (`manage.py issue_licence`).
LICENCE_SIGNING_KEY = _development_secrets()["LICENCE_SIGNING_KEY"] if DEBUG else ""
LICENCE_PUBLIC_KEY = env.str("LICENCE_PUBLIC_KEY", default="") or (
    base64.b64encode(
        Ed25519PrivateKey.from_private_bytes(base64.b64decode(LICENCE_SIGNING_KEY))
        .public_key()
        .public_bytes_raw()
    ).decode()
    if LICENCE_SIGNING_KEY
    else _secret("LICENCE_PUBLIC_KEY")
)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.mfa",
    "dep_accounts",
]

MIDDLEWARE = [
    "dep_accounts.middleware.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "dep_accounts.middleware.TwoFactorEnrolmentMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mdmportal.urls"
WSGI_APPLICATION = "mdmportal.wsgi.application"

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
                "dep_accounts.context_processors.banner",
                "dep_accounts.context_processors.debug_outbox",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'mdmportal.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Persistent connections: each gunicorn thread keeps its database connection for this many
# seconds instead of opening one per request (Django docs, "Persistent connections"), and
# checks it before reuse, so a database restart costs no failed request. 0 closes per request.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web server and the worker share the embedded database.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dep_accounts:dashboard"
LOGOUT_REDIRECT_URL = "login"

# Sign-in (django-allauth; docs/decisions/0001-sign-in-with-django-allauth.md): the local form
# takes a username and password, then a TOTP code when the user has enrolled one. Nobody signs
# up: local users are made by an admin, SSO users on their first sign-in through their IdP.
LOCAL_LOGIN = env.bool("LOCAL_LOGIN", default=True)
ACCOUNT_ADAPTER = "dep_accounts.sign_in.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
# A signed-in user may open the sign-in page to sign in as someone else (as before allauth).
ACCOUNT_AUTHENTICATED_LOGIN_REDIRECTS = False
ACCOUNT_SESSION_REMEMBER = True
# Failed passwords are django-axes' to count (per username and address, on both sign-in pages,
# with its lockout page). allauth's per-address limit on sign-ins (30 a minute) would turn away
# an office behind one NAT at nine; its other limits (TOTP codes among them) stay on.
ACCOUNT_RATE_LIMITS = {"login_failed": None, "login": None}
SOCIALACCOUNT_ADAPTER = "dep_accounts.sign_in.SocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
# An SSO identity never takes over a local user with the same email address.
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_QUERY_EMAIL = False
MFA_ADAPTER = "dep_accounts.sign_in.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="mdmportal")
MFA_RECOVERY_CODE_COUNT = 10
# With this on, an admin who signs in with a password is sent to enrol TOTP before anything else.
MFA_REQUIRED_FOR_ADMINS = env.bool("MFA_REQUIRED_FOR_ADMINS", default=False)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _oidc_provider(provider_id: str) -> dict:
    """One OpenID Connect identity provider from OIDC_<ID>_* variables (docs/sso.md)."""
    prefix = f"OIDC_{provider_id.upper()}_"

    def required(name: str) -> str:
        value = env.str(prefix + name, default="")
        if not value:
            raise ImproperlyConfigured(
                f"OIDC_PROVIDERS names {provider_id!r} but {prefix}{name} is not set "
                f"(nor {prefix}{name}_FILE)."
            )
        return value

    return {
        "provider_id": provider_id,
        "name": env.str(prefix + "NAME", default=provider_id),
        "client_id": required("CLIENT_ID"),
        "secret": required("CLIENT_SECRET"),
        "settings": {
            "server_url": required("ISSUER"),
            "oauth_pkce_enabled": True,
            # Roles: which values of which claim make an admin or a viewer.
            "role_claim": env.str(prefix + "ROLE_CLAIM", default="groups"),
            "admin_values": env.list(prefix + "ADMIN_VALUES", default=[]),
            "viewer_values": env.list(prefix + "VIEWER_VALUES", default=[]),
        },
    }


OIDC_PROVIDERS = [_oidc_provider(p) for p in env.list("OIDC_PROVIDERS", default=[])]
SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": OIDC_PROVIDERS, "OAUTH_PKCE_ENABLED": True}}
# SSO users not seen signing in for this long are deactivated by `manage.py sso_deactivate`.
SSO_INACTIVE_DAYS = env.int("SSO_INACTIVE_DAYS", default=30)

# Repeated failed logins lock the username + address pair for a while.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# Behind a reverse proxy (docker-compose's nginx stands in front of gunicorn), the peer is the
# proxy: the client is counted TRUSTED_PROXY_COUNT entries from the right of X-Forwarded-For.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "dep_accounts.proxies.client_address"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# A server token is about 2 KB; nothing this portal accepts is near 1 MB. Form fields past the
# limit are refused (400) before they are read; a larger file is spooled to a temporary file,
# never to memory, and the form refuses it by its size without reading it.
DEP_TOKEN_MAX_BYTES = env.int("DEP_TOKEN_MAX_BYTES", default=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
# Any request body declared larger than this is refused (413) before it is read at all.
MAX_REQUEST_BYTES = env.int("MAX_REQUEST_BYTES", default=20 * 1024 * 1024)

# Apple's DEP web service; the demo and the tests point this at applesim.
DEP_API_URL = env.str("DEP_API_URL", default="https://mdmenrollment.apple.com")
DEP_API_TIMEOUT_SECONDS = env.float("DEP_API_TIMEOUT_SECONDS", default=30.0)
# The ABM-like page of applesim, linked from the Add DEP Account steps in the demo only.
APPLESIM_ABM_URL = env.str("APPLESIM_ABM_URL", default="")
DEP_TOKEN_WARNING_DAYS = env.int("DEP_TOKEN_WARNING_DAYS", default=30)
DEP_TOKEN_CRITICAL_DAYS = env.int("DEP_TOKEN_CRITICAL_DAYS", default=7)
DEP_REMINDER_DAYS = [30, 14, 7, 3, 1, 0]
# Apple's Apps and Books for Organizations service (v2); the demo and the tests use applesim.
VPP_API_URL = env.str("VPP_API_URL", default="https://vpp.itunes.apple.com/mdm/v2")
# A page waits at most this long for Apple's Retry-After before it says to try again later.
VPP_RETRY_MAX_WAIT_SECONDS = env.float("VPP_RETRY_MAX_WAIT_SECONDS", default=10.0)
# A content token is a few hundred bytes; bigger files are refused unread.
VPP_TOKEN_MAX_BYTES = 16 * 1024
# The MDM vendor certificate that signs push-certificate requests (Apple, "Setting Up Push
# Notifications for Your MDM Customers"): the path of a PEM bundle (its private key, the
# certificate, Apple's intermediate and root) or of a PKCS#12 file. It is a file, so
# APNS_VENDOR_CERTIFICATE_FILE names the same path. The demo keeps one applesim issued in var/.
APNS_VENDOR_CERTIFICATE = (
    environ.Env().str("APNS_VENDOR_CERTIFICATE_FILE", default="")
    or environ.Env().str("APNS_VENDOR_CERTIFICATE", default="")
    or (str(VAR_DIR / "apns-vendor-certificate.pem") if DEBUG else "")
)
APNS_VENDOR_CERTIFICATE_PASSWORD = env.str("APNS_VENDOR_CERTIFICATE_PASSWORD", default="")
# A sync renews its lease on the account with every page; a killed worker's lease lapses
# after this long and the next sync resumes from the saved cursor. It must outlast the longest
# wait for one page: three attempts at DEP_API_TIMEOUT_SECONDS plus Apple's Retry-After waits.
DEP_SYNC_LEASE_SECONDS = env.int("DEP_SYNC_LEASE_SECONDS", default=180)
# A queued sync marks its account so no dispatcher (another worker's start, an overlapping run)
# queues a second one; the mark lapses after this long in case the broker lost the message.
DEP_SYNC_QUEUED_SECONDS = env.int("DEP_SYNC_QUEUED_SECONDS", default=1800)
# Incremental syncs can miss devices Apple never reports (fleetdm/fleet#49837) or removed: a
# full fetch at this interval reconciles the account with Apple's list.
DEP_FULL_FETCH_INTERVAL_DAYS = env.int("DEP_FULL_FETCH_INTERVAL_DAYS", default=7)

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
# Where `manage.py mailcatcher` (the demo's mail server) keeps what it catches: Admin > Outbox.
MAILCATCHER_DIR = VAR_DIR / "mail"
# Seconds Django's SMTP backend waits to connect and for each answer: a hung mail server must
# not hold a worker forever.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="mdmportal <mdmportal@localhost>")
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000")
# Who this portal is to Apple's Apps and Books service: the `mdmInfo` it claims locations with.
# Another MDM's id on a location means it manages it. Keep the id stable across upgrades.
VPP_MDM_ID = env.str("VPP_MDM_ID", default="") or str(
    uuid.uuid5(uuid.NAMESPACE_URL, PORTAL_BASE_URL)
)
VPP_MDM_NAME = env.str("VPP_MDM_NAME", default="") or "mdmportal"
# Webhooks reach public addresses only; these networks (CIDRs, comma separated) are let through
# too, e.g. "10.20.0.0/16" for a receiver on the LAN. The tests and the demo allow loopback.
WEBHOOK_ALLOWED_NETWORKS = env.list("WEBHOOK_ALLOWED_NETWORKS", default=[])
# The bearer token Prometheus sends to scrape /metrics; unset, /metrics does not exist (404).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "celery-broker"
    # kombu's filesystem transport writes its exchange table to "control/" in the working
    # directory unless told otherwise: keep it with the rest of the broker under var/.
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# The beat's entry points, all in dep_accounts/tasks.py: (entry, task, seconds or crontab).
CELERY_BEAT_SCHEDULE = {
    entry: {"task": f"dep_accounts.tasks.{task}", "schedule": schedule}
    for entry, task, schedule in (
        ("dep-token-expiry", "token_expiry_refresh", crontab(minute=0)),
        ("vpp-content-tokens-check", "content_tokens_check_with_apple", crontab(hour=3, minute=17)),
        ("dep-sync-dispatch", "syncs_dispatch_due", 60.0),
        ("dep-guarded-renewals", "guarded_renewals_watch", 5 * 60.0),
        ("outbox-emails-due", "emails_send_due", 60.0),
        ("webhook-deliveries-due", "webhook_deliveries_send_due", 60.0),
    )
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        # At DEBUG these log every signed request with the server token's consumer key and
        # access token: they stay quiet whatever LOG_LEVEL says.
        "oauthlib": {"level": "WARNING"},
        "requests_oauthlib": {"level": "WARNING"},
    },
}

# Variables marked @sensitive_variables are hidden from error pages even in debug mode.
DEFAULT_EXCEPTION_REPORTER_FILTER = "dep_accounts.error_reports.SecretsHiddenReporterFilter"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Scripts, styles and images come from the portal's own static files only: no page has inline
# script, style or event handler attributes, so injected markup cannot run or restyle anything.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        # Signing in and out through an identity provider is a form whose answer redirects to
        # it: browsers hold redirects after a form to form-action too.
        "form-action": [
            SELF,
            *sorted({_origin(a["settings"]["server_url"]) for a in OIDC_PROVIDERS}),
        ],
        "frame-ancestors": [NONE],
    },
}
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    if TRUSTED_PROXY_COUNT:
        # Only a proxy the portal trusts may say the client spoke HTTPS.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
