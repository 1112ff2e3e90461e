"""Shared fixtures. Named users, as in healthchecks: alice owns an account, bob is on her team,
charlie has an account of his own and no access to alice's."""

import pytest
from django.conf import settings
from django.http import HttpRequest
from django.test import Client

# Each task runs as it is enqueued, in the test's own process and transaction (no worker); the
# queue tests start real `db_worker` processes with the database backend instead. Set before any
# task is enqueued: Django reads TASKS once, at the first use of a backend.
settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
# The test client and the live server speak plain HTTP: no redirect to HTTPS, no HSTS, cookies not
# HTTPS-only (production's defaults with DEBUG off; tests/deploy/ checks those).
settings.SECURE_SSL_REDIRECT = False
settings.SECURE_HSTS_SECONDS = 0
settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
# The sign-up throttle counts in this process's memory, emptied before each test (see `empty_cache`),
# rather than in the database cache table, which outlives the tests' rollbacks.
settings.CACHES = {**settings.CACHES, "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

from django.core.cache import cache  # noqa: E402
from django.test.signals import setting_changed  # noqa: E402

from payments.services import card_add  # noqa: E402  (after TASKS: importing a task reads it)
from pictor_billing.settings import content_security_policy  # noqa: E402
from tests.factories import PASSWORD, AccountFactory, UserFactory, packages_seed, price_list_seed  # noqa: E402


def _stripe_origins_in_csp(*, setting, **kwargs):
    """A test pointing Stripe at the emulator (tests/stripe/conftest.py's `stripe_on`) gets the policy
    production would have with those settings, as settings.py builds it at start-up."""
    if setting in {"STRIPE_JS_URL", "STRIPE_API_BASE"}:
        settings.SECURE_CSP = content_security_policy(stripe_js_url=settings.STRIPE_JS_URL,
                                                      stripe_api_base=settings.STRIPE_API_BASE)


setting_changed.connect(_stripe_origins_in_csp)


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with no sign-ups counted and no verification email just sent."""
    cache.clear()

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
# The test cards (docs/rules.md): refused when saved...
DECLINED = "4000000000000002"
INSUFFICIENT = "4000000000009995"
# ...saved, then every charge declined; saved, then authentication needed.
DECLINES_CHARGES = "4000000000000341"
NEEDS_AUTHENTICATION = "4000002760003184"


@pytest.fixture(autouse=True)
def sandbox_books(settings, tmp_path):
    """Each test's sandbox processor keeps its own books (payments and idempotency keys), as a
    processor would: in a file of its own, out of reach of the test database's rollbacks."""
    settings.SANDBOX_DB = str(tmp_path / "sandbox.sqlite3")
    return settings.SANDBOX_DB


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2's many rounds cost most of a second per user; the tests create and log in many."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def prices(db):
    price_list_seed()


@pytest.fixture
def packages(db):
    return packages_seed()


@pytest.fixture
def alice_account(db):
    return AccountFactory(name="Alice Events")


@pytest.fixture
def alice(alice_account):
    return UserFactory(email="alice@example.com", account=alice_account)


@pytest.fixture
def bob(alice_account):
    return UserFactory(email="bob@example.com", account=alice_account)


@pytest.fixture
def charlie(db):
    return UserFactory(email="charlie@example.com", account=AccountFactory(name="Charlie Photo"))


def add_card(account, number=VISA):
    return card_add(account=account, number=number, exp_month=12, exp_year=2099, cvc="123")


@pytest.fixture
def alice_card(alice):
    return add_card(alice.account)


def logged_in(user) -> Client:
    """A client logged in as `user` that enforces CSRF like a browser would."""
    client = Client(enforce_csrf_checks=True)
    # django-axes checks every log-in against its lock-outs, and needs the request for that (the
    # address); the test client's login() passes none of its own.
    assert client.login(request=HttpRequest(), email=user.email, password=PASSWORD)
    return client


@pytest.fixture
def alice_client(alice):
    return logged_in(alice)


@pytest.fixture
def renders(monkeypatch):
    """The numbers of the invoices actually rendered by WeasyPrint (each a real render), in order."""
    from invoices import pdf as invoice_pdfs

    calls = []
    real = invoice_pdfs.invoice_pdf

    def counting(invoice):
        calls.append(invoice.number)
        return real(invoice)

    monkeypatch.setattr(invoice_pdfs, "invoice_pdf", counting)
    return calls
