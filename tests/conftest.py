"""Shared fixtures. Named users, as in healthchecks: alice owns an account, bob is on her team,
charlie has an account of his own and no access to alice's."""

import pytest
from django.conf import settings
from django.test import Client

# Each task runs as it is enqueued, in the test's own process and transaction (no worker); the
# queue tests start real `db_worker` processes with the database backend instead. Set before any
# task is enqueued: Django reads TASKS once, at the first use of a backend.
settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}

from payments.services import card_add  # noqa: E402  (after TASKS: importing a task reads it)
from tests.factories import PASSWORD, AccountFactory, UserFactory, packages_seed, price_list_seed  # noqa: E402

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
    assert client.login(email=user.email, password=PASSWORD)
    return client


@pytest.fixture
def alice_client(alice):
    return logged_in(alice)
