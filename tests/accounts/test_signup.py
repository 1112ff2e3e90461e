"""Signing up (throttled per address), logging in and out."""

import re

from django.test import Client

from accounts.models import Account, User
from tests.factories import PASSWORD
from tests.helpers import csrf_token, post, text
from tokens.models import TokenEntry

GOOD = {"company_name": "Shutterbug Events", "email": "dana@shutterbug.example", "password": PASSWORD}


def browser() -> Client:
    return Client(enforce_csrf_checks=True)


def test_sign_up_creates_the_account_and_its_owner_logs_in_and_emails_the_verification_link(
        db, mailoutbox, django_capture_on_commit_callbacks):
    client = browser()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, "/signup/", GOOD)
    assert response.status_code == 302
    assert response["Location"] == "/billing/licenses/"

    user = User.objects.get(email="dana@shutterbug.example")
    assert user.account.name == "Shutterbug Events"
    assert user.check_password(PASSWORD)
    assert list(user.account.users.all()) == [user]
    assert user.email_verified_at is None
    assert not TokenEntry.objects.exists(), "the welcome tokens wait for the email to be verified"
    [email] = mailoutbox
    assert email.to == ["dana@shutterbug.example"]
    assert email.subject == "Confirm your email for Pictor Billing"
    link = re.search(r"http://testserver/verify-email/[^/\s]+/", email.body).group(0)
    assert "dana" not in link.lower(), "the link shows no address"

    page = client.get("/billing/licenses/")
    assert page.status_code == 200
    assert 'data-token-balance="0"' in text(page)
    assert "dana@shutterbug.example" in text(page)
    assert "We emailed a link to dana@shutterbug.example" in text(page)
    assert 'data-banner="verify-email"' in text(page)


def test_sign_up_with_an_email_already_in_use_in_another_case_is_refused(db):
    post(browser(), "/signup/", GOOD)
    response = post(browser(), "/signup/", {**GOOD, "company_name": "Copycat", "email": "  DANA@Shutterbug.EXAMPLE "})
    assert response.status_code == 400
    assert "An account with this email already exists. Log in instead." in text(response)
    assert Account.objects.count() == 1
    assert User.objects.count() == 1


def test_sign_up_with_a_weak_password_is_refused_and_creates_nothing(db):
    response = post(browser(), "/signup/", {**GOOD, "password": "12345678"})
    assert response.status_code == 400
    body = text(response)
    assert "This password is too common." in body
    assert "This password is entirely numeric." in body
    assert not Account.objects.exists()
    assert not User.objects.exists()
    assert not TokenEntry.objects.exists()


def test_sign_up_without_a_company_name_is_refused(db):
    response = post(browser(), "/signup/", {**GOOD, "company_name": ""})
    assert response.status_code == 400
    assert "This field is required." in text(response)
    assert not User.objects.exists()


def test_the_sign_up_page_does_not_echo_the_password_back(db):
    response = post(browser(), "/signup/", {**GOOD, "password": "short"})
    assert response.status_code == 400
    assert 'value="short"' not in text(response)


def test_a_new_user_logs_in_with_their_email_and_lands_on_billing(alice):
    client = browser()
    response = post(client, "/login/", {"username": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/billing/licenses/"
    assert client.get("/billing/licenses/").status_code == 200


def test_a_login_with_the_wrong_password_is_refused(alice):
    client = browser()
    response = post(client, "/login/", {"username": "alice@example.com", "password": "not it"})
    assert response.status_code == 200
    assert "Please enter a correct email and password." in text(response)
    assert client.get("/billing/licenses/").status_code == 302


def test_a_login_returns_to_the_page_asked_for(alice):
    client = browser()
    response = post(client, "/login/", {"username": "alice@example.com", "password": PASSWORD,
                                        "next": "/billing/invoices/"})
    assert response["Location"] == "/billing/invoices/"


def test_a_login_never_sends_the_user_off_site(alice):
    client = browser()
    response = post(client, "/login/", {"username": "alice@example.com", "password": PASSWORD,
                                        "next": "https://evil.example/phish"})
    assert response.status_code == 302
    assert response["Location"] == "/billing/licenses/"


def test_logging_out_ends_the_session(alice):
    client = browser()
    post(client, "/login/", {"username": "alice@example.com", "password": PASSWORD})
    response = post(client, "/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert client.get("/billing/licenses/")["Location"] == "/login/?next=/billing/licenses/"


def test_logging_out_needs_the_csrf_token(alice):
    client = browser()
    post(client, "/login/", {"username": "alice@example.com", "password": PASSWORD})
    csrf_token(client)
    assert client.post("/logout/").status_code == 403
    assert client.get("/billing/licenses/").status_code == 200


def test_a_logged_in_user_opening_sign_up_goes_to_billing(alice):
    client = browser()
    client.force_login(alice)
    assert client.get("/signup/")["Location"] == "/billing/licenses/"


def test_a_user_logs_in_with_their_email_typed_as_at_sign_up(db):
    post(browser(), "/signup/", {**GOOD, "email": "Dana@Shutterbug.Example"})
    client = browser()
    response = post(client, "/login/", {"username": "Dana@Shutterbug.Example", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/billing/licenses/").status_code == 200


def test_a_user_logs_in_with_the_lower_case_email_sign_up_stored(db):
    post(browser(), "/signup/", {**GOOD, "email": "Dana@Shutterbug.Example"})
    assert User.objects.get().email == "dana@shutterbug.example"
    response = post(browser(), "/login/", {"username": "dana@shutterbug.example", "password": PASSWORD})
    assert response.status_code == 302


def test_the_sixth_sign_up_from_one_address_in_an_hour_is_refused_with_429(db, settings):
    settings.SIGNUP_LIMIT_PER_HOUR = 5
    for number in range(5):
        assert post(browser(), "/signup/", {**GOOD, "email": f"owner{number}@example.com"}).status_code == 302
    response = post(browser(), "/signup/", {**GOOD, "email": "sixth@example.com"})
    assert response.status_code == 429
    assert "Too many accounts were created from your network in the last hour." in text(response)
    assert not User.objects.filter(email="sixth@example.com").exists()
    assert Account.objects.count() == 5


def test_sign_ups_from_another_address_are_not_held_back(db, settings):
    settings.SIGNUP_LIMIT_PER_HOUR = 1
    assert post(browser(), "/signup/", GOOD).status_code == 302
    other = Client(enforce_csrf_checks=True, REMOTE_ADDR="203.0.113.9")
    assert post(other, "/signup/", {**GOOD, "email": "other@example.com"}).status_code == 302


def test_behind_the_proxy_the_address_it_appended_is_the_one_counted(db, settings):
    settings.SIGNUP_LIMIT_PER_HOUR = 1
    settings.BEHIND_PROXY = True

    def via_proxy(client_address, spoofed="198.51.100.1"):
        return Client(enforce_csrf_checks=True, REMOTE_ADDR="10.0.0.2",
                      HTTP_X_FORWARDED_FOR=f"{spoofed}, {client_address}")

    assert post(via_proxy("203.0.113.5"), "/signup/", GOOD).status_code == 302
    assert post(via_proxy("203.0.113.5", spoofed="192.0.2.77"), "/signup/",
                {**GOOD, "email": "again@example.com"}).status_code == 429
    assert post(via_proxy("203.0.113.6"), "/signup/", {**GOOD, "email": "neighbour@example.com"}).status_code == 302


def test_refused_sign_ups_do_not_count_against_the_address(db, settings):
    settings.SIGNUP_LIMIT_PER_HOUR = 1
    for _ in range(3):
        assert post(browser(), "/signup/", {**GOOD, "password": "12345678"}).status_code == 400
    assert post(browser(), "/signup/", GOOD).status_code == 302
