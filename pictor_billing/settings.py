"""Settings for Pictor Billing, one module, driven by environment variables.

Every variable is listed in README.md. The defaults give the embedded set-up
`make run` promises: SQLite, the sandbox card processor and console email. With
DEBUG off they are also production's for HTTPS, cookies and the Content-Security-Policy
(README.md, "Deploying").
"""

import datetime
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

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
    "axes",
    "pictor_billing",
    "accounts",
    "licenses",
    "payments",
    "invoices",
    "tokens",
    "billing",
    "finance",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
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
    # Last: turns a locked-out log-in into the lockout page (see AXES_* below).
    "axes.middleware.AxesMiddleware",
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
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, plus statements that ride on the COMMIT (the invoice number: see its docstring).
    DATABASES["default"]["ENGINE"] = "pictor_billing.postgresql"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if "DATABASE_URL" not in os.environ:
        (BASE_DIR / "var").mkdir(exist_ok=True)
    # Row locks do not exist on SQLite; IMMEDIATE transactions take the write
    # lock up front, so read-then-write services still serialize there.
    DATABASES["default"].setdefault("OPTIONS", {})["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["OPTIONS"]["timeout"] = 20

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
# django-axes first: it refuses a locked-out log-in before the password is even checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "accounts.backends.EmailBackend"]
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

# HTTPS. With DEBUG off everything defaults to HTTPS only (`make run` sets DEBUG=true for plain HTTP).
# BEHIND_PROXY: a reverse proxy or load balancer terminates TLS, says so in X-Forwarded-Proto and
# appends the client's address to X-Forwarded-For (pictor_billing/client_ip.py reads it).
BEHIND_PROXY = envbool("BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe it over plain HTTP
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else str(365 * 24 * 3600)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"


def email_mailer(url: str) -> dict:
    """A MAILERS entry for EMAIL_URL: smtp://user:password@host:port, STARTTLS with ?tls, or smtps://
    for TLS from the first byte. The port defaults to 25, 587 (?tls) or 465 (smtps)."""
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ImproperlyConfigured("EMAIL_URL must look like smtp://user:password@host:port[?tls] or smtps://...")
    tls = parse_qs(parts.query, keep_blank_values=True).get("tls", ["false"])[-1].lower() in {"", "1", "true", "yes"}
    return {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": {
        "host": parts.hostname, "port": parts.port,
        "username": unquote(parts.username or ""), "password": unquote(parts.password or ""),
        "use_ssl": parts.scheme == "smtps", "use_tls": tls and parts.scheme == "smtp",
        "timeout": 10,  # a mail server that hangs must not hang the request or task sending through it
    }}


# Email (receipts, dunning, verification, password reset): EMAIL_URL for SMTP; otherwise EMAIL_BACKEND,
# the console (printed, not sent) by default.
MAILERS = {"default": email_mailer(os.environ["EMAIL_URL"]) if os.environ.get("EMAIL_URL") else {
    "BACKEND": os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")}}
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
# The scheduler enqueues one renewal task per this many accounts due; each renews its batch in one
# transaction per billing date (a killed worker's batch is rolled back and enqueued again whole).
BILLING_ACCOUNTS_PER_TASK = int(os.environ.get("BILLING_ACCOUNTS_PER_TASK", "100"))
# Test clocks (staff move one account's time forward): on with the sandbox, never with live Stripe keys.
TEST_CLOCKS = envbool("TEST_CLOCKS", PAYMENT_GATEWAY == "sandbox")
# Stripe (PAYMENT_GATEWAY=stripe). STRIPE_API_BASE and STRIPE_JS_URL, unset in production, point the
# gateway and the card form at an emulator (localstripe, in the tests).
STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
STRIPE_PUBLISHABLE_KEY = os.environ.get("STRIPE_PUBLISHABLE_KEY", "")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")
STRIPE_JS_URL = os.environ.get("STRIPE_JS_URL", "") or "https://js.stripe.com/v3/"


def content_security_policy(*, stripe_js_url: str, stripe_api_base: str) -> dict:
    """Our own files only, no inline script or style; Stripe.js, its API and its frames (card Element,
    3-D Secure). An emulator's origins (STRIPE_JS_URL, STRIPE_API_BASE) join them when set."""

    def origins(*urls: str) -> list[str]:
        return list(dict.fromkeys(f"{p.scheme}://{p.netloc}" for p in map(urlsplit, urls) if p.scheme and p.netloc))

    stripe_js = origins("https://js.stripe.com", stripe_js_url)
    return {
        "default-src": [CSP.SELF],
        "script-src": [CSP.SELF, *stripe_js],
        "style-src": [CSP.SELF],
        "connect-src": [CSP.SELF, *origins("https://api.stripe.com", stripe_api_base, stripe_js_url)],
        "frame-src": origins(*stripe_js, "https://hooks.stripe.com"),
        "object-src": [CSP.NONE],
        "base-uri": [CSP.NONE],
        "form-action": [CSP.SELF],
        "frame-ancestors": [CSP.NONE],
    }


SECURE_CSP = content_security_policy(stripe_js_url=STRIPE_JS_URL, stripe_api_base=STRIPE_API_BASE)

# Log-in throttling (django-axes): AXES_FAILURE_LIMIT failed log-ins for one email from one address
# lock that pair out for AXES_COOLOFF_MINUTES; a successful log-in clears the count. Support can lift
# a lock early by deleting its row under Axes → Access attempts in admin.
AXES_ENABLED = envbool("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = datetime.timedelta(minutes=int(os.environ.get("AXES_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"  # AuthenticationForm's name for the email field
AXES_USERNAME_CALLABLE = "accounts.login_throttle.login_email"
AXES_CLIENT_IP_CALLABLE = "pictor_billing.client_ip.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.login_throttle.login_locked_out"
AXES_DISABLE_ACCESS_LOG = True  # failures are what it needs; no row per successful log-in
# Sign-up throttling: at most SIGNUP_LIMIT_PER_HOUR new accounts an hour from one address (0: no limit),
# counted in the cache below, which every web process and machine shares.
SIGNUP_LIMIT_PER_HOUR = int(os.environ.get("SIGNUP_LIMIT_PER_HOUR", "5"))
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "django_cache"},
    # Each process's own copy of the price list and tier cards, keyed by the price list version the
    # database holds (licenses/catalogue.py): a read costs no query, a change is seen at once everywhere.
    "catalogue": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "catalogue",
                  "TIMEOUT": 24 * 3600, "OPTIONS": {"MAX_ENTRIES": 100}},
}

# The seller printed on every invoice; copied onto each invoice when it is issued.
SELLER = {
    "name": os.environ.get("SELLER_NAME", "Pictor Inc."),
    # Lines separated by newlines, or by a literal \n as env files write them.
    "address": os.environ.get("SELLER_ADDRESS", "1 Market Street\nSan Francisco, CA 94105\nUnited States").replace(
        "\\n", "\n"),
    "email": os.environ.get("SELLER_EMAIL", "billing@pictor.example"),
    "vat_id": os.environ.get("SELLER_VAT_ID", ""),
}

# Issued invoices' PDFs, rendered once and kept here (invoices/pdf.py): a folder every web process and
# task worker of one machine shares (or a shared volume, for several machines).
FINANCE_PDF_CACHE = os.environ.get("FINANCE_PDF_CACHE") or str(BASE_DIR / "var" / "pdf-cache")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # The stripe SDK logs every request at INFO; its errors reach us as exceptions anyway.
    "loggers": {"weasyprint": {"level": "ERROR"}, "fontTools": {"level": "ERROR"}, "stripe": {"level": "WARNING"}},
}
