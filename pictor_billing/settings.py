"""Settings for Pictor Billing, one module, driven by environment variables.

Every variable is listed in README.md. The defaults give the embedded set-up
`make run` promises: SQLite, the sandbox card processor and console email.
"""

import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool) -> bool:
    """Read a yes/no environment variable ("1", "true", "yes", "on" mean yes)."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envlist(name: str, default: str) -> list[str]:
    """Read a comma-separated environment variable into a list of non-empty items."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", False)


def local_secret_key(path: Path) -> str:
    """A random key made once and kept in var/ (git-ignored), for machines without SECRET_KEY.

    Never a key written in the repository: sessions and signed purchase tokens
    would be forgeable by anyone who read it.
    """
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = os.environ.get("SECRET_KEY") or local_secret_key(BASE_DIR / "var" / "secret_key")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_tasks_db",
    "pictor_billing",
    "accounts",
    "licenses",
    "payments",
    "invoices",
    "tokens",
    "billing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves static/ from the app itself (gunicorn included), no separate web server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "pictor_billing.htmx.HtmxMessagesMiddleware",
]

ROOT_URLCONF = "pictor_billing.urls"
WSGI_APPLICATION = "pictor_billing.wsgi.application"

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
                "billing.context_processors.billing_header",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"),
        # Reusing connections saves a PostgreSQL connect (several ms) on every request.
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if "DATABASE_URL" not in os.environ:
        (BASE_DIR / "var").mkdir(exist_ok=True)
    # Row locks do not exist on SQLite; IMMEDIATE transactions take the write
    # lock up front, so read-then-write services still serialize there.
    DATABASES["default"].setdefault("OPTIONS", {})["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["OPTIONS"]["timeout"] = 20

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.EmailBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "licenses:list"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"  # billing dates are calendar dates in UTC (docs/rules.md)
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Set STATIC_ROOT to run collectstatic for a deployment; without it WhiteNoise
# serves the files where runserver would find them.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"

MAILERS = {"default": {"BACKEND": os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")}}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "billing@pictor.example")

# Card processing: "sandbox" (built in, no network) or "stripe".
PAYMENT_GATEWAY = os.environ.get("PAYMENT_GATEWAY", "sandbox")
# The sandbox keeps its own books (payments, idempotency keys) in a SQLite file of its own, as a
# real processor keeps them apart from ours; SANDBOX_LATENCY_MS delays each of its calls.
SANDBOX_DB = os.environ.get("SANDBOX_DB") or str(BASE_DIR / "var" / "sandbox.sqlite3")
SANDBOX_LATENCY_MS = int(os.environ.get("SANDBOX_LATENCY_MS", "0"))
# Attempts left pending or unknown this long are settled by reconciliation (payments_reconcile).
RECONCILE_AFTER_SECONDS = int(os.environ.get("RECONCILE_AFTER_SECONDS", "120"))
# A renewal charge the charge step claimed and left unanswered this long (its worker died mid-send)
# is claimed again by the next charge step and re-sent with the same idempotency key, so the
# processor answers it once. The worker tests set it to a second; 300 (5 minutes) otherwise.
BILLING_CLAIM_TIMEOUT_SECONDS = int(os.environ.get("BILLING_CLAIM_TIMEOUT_SECONDS", "300"))

# Background work (the billing run's per-account tasks and charge step, queued auto top-ups,
# reconciliation) runs through Django's task framework on a database queue that several
# `manage.py db_worker` processes share. TASKS_BACKEND=immediate runs each task at once, in the
# process that enqueues it (no worker needed).
TASKS = {"default": {
    "BACKEND": {"database": "django_tasks_db.DatabaseBackend",
                "immediate": "django.tasks.backends.immediate.ImmediateBackend"}[
        os.environ.get("TASKS_BACKEND", "database")],
    "QUEUES": ["default"],
}}
# Renewal charges are sent this many at a time by the charge step (each waits on the processor).
# SQLite writes one transaction at a time, so there one is enough.
BILLING_CHARGE_CONCURRENCY = int(os.environ.get("BILLING_CHARGE_CONCURRENCY")
                                 or (1 if DATABASES["default"]["ENGINE"].endswith("sqlite3") else 16))
# Test clocks (staff move one account's time forward): on with the sandbox, never with live Stripe keys.
TEST_CLOCKS = envbool("TEST_CLOCKS", PAYMENT_GATEWAY == "sandbox")
# Stripe (PAYMENT_GATEWAY=stripe). STRIPE_API_BASE and STRIPE_JS_URL, unset in production, point the
# gateway and the card form at an emulator (localstripe, in the tests).
STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
STRIPE_PUBLISHABLE_KEY = os.environ.get("STRIPE_PUBLISHABLE_KEY", "")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")
STRIPE_JS_URL = os.environ.get("STRIPE_JS_URL", "") or "https://js.stripe.com/v3/"

# The seller printed on every invoice; copied onto each invoice when it is issued.
SELLER = {
    "name": os.environ.get("SELLER_NAME", "Pictor Inc."),
    # Lines separated by newlines, or by a literal \n as env files write them.
    "address": os.environ.get("SELLER_ADDRESS", "1 Market Street\nSan Francisco, CA 94105\nUnited States").replace(
        "\\n", "\n"),
    "email": os.environ.get("SELLER_EMAIL", "billing@pictor.example"),
    "vat_id": os.environ.get("SELLER_VAT_ID", ""),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"weasyprint": {"level": "ERROR"}, "fontTools": {"level": "ERROR"}},
}
