"""Log-in throttling (django-axes): repeated failures for one email from one address lock that pair out
for a while, with a message saying so on the log-in page; other people and other addresses log in as usual."""

import pytest
from django.test import Client

from tests.factories import PASSWORD
from tests.helpers import post, text

LOCKED = "Too many failed log-ins for this email: log in is locked for 15 minutes."


@pytest.fixture(autouse=True)
def five_tries(settings):
    settings.AXES_FAILURE_LIMIT = 5


def browser(address="127.0.0.1") -> Client:
    return Client(enforce_csrf_checks=True, REMOTE_ADDR=address)


def log_in(client, email="alice@example.com", password=PASSWORD):
    return post(client, "/login/", {"username": email, "password": password})


def fail(times, client=None, email="alice@example.com"):
    for _ in range(times):
        response = log_in(client or browser(), email, "not it")
    return response


def test_four_wrong_passwords_still_let_the_right_one_in(alice):
    assert fail(4).status_code == 200
    assert log_in(browser()).status_code == 302


def test_the_fifth_wrong_password_locks_the_email_out_with_a_clear_message(alice):
    response = fail(5)
    assert response.status_code == 429
    assert LOCKED in " ".join(text(response).split())
    assert 'href="/password-reset/"' in text(response)


def test_once_locked_even_the_right_password_is_refused(alice):
    fail(5)
    response = log_in(browser())
    assert response.status_code == 429
    assert LOCKED in " ".join(text(response).split())
    assert browser().get("/billing/licenses/").status_code == 302


def test_the_email_counts_in_any_case(alice):
    for email in ["alice@example.com", "ALICE@example.com", " Alice@Example.com", "alice@EXAMPLE.com"]:
        fail(1, email=email)
    assert fail(1, email="aLiCe@example.com").status_code == 429


def test_a_lock_holds_one_email_from_one_address_only(alice, bob):
    fail(5)
    assert log_in(browser(), "bob@example.com").status_code == 302
    assert log_in(browser("203.0.113.9")).status_code == 302


def test_a_successful_log_in_clears_the_count(alice):
    fail(4)
    assert log_in(browser()).status_code == 302
    assert fail(4).status_code == 200
    assert log_in(browser()).status_code == 302


def test_the_lock_ends_after_the_cool_off(alice, settings):
    fail(5)
    settings.AXES_COOLOFF_TIME = 0  # hours: the 15 minutes are over
    assert log_in(browser()).status_code == 302


def test_with_throttling_switched_off_failures_never_lock(alice, settings):
    settings.AXES_ENABLED = False
    fail(10)
    assert log_in(browser()).status_code == 302
