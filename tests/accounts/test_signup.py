"""Signing up, logging in and out."""

from django.test import Client

from accounts.models import Account, User
from tests.factories import PASSWORD
from tests.helpers import csrf_token, post, text
from tokens.models import TokenEntry
from tokens.services import token_balance

GOOD = {"company_name": "Shutterbug Events", "email": "dana@shutterbug.example", "password": PASSWORD}


def browser() -> Client:
    return Client(enforce_csrf_checks=True)


def test_sign_up_creates_the_account_its_owner_and_fifty_welcome_tokens_and_logs_in(db):
    client = browser()
    response = post(client, "/signup/", GOOD)
    assert response.status_code == 302
    assert response["Location"] == "/billing/licenses/"

    user = User.objects.get(email="dana@shutterbug.example")
    assert user.account.name == "Shutterbug Events"
    assert user.check_password(PASSWORD)
    assert list(user.account.users.all()) == [user]
    grants = TokenEntry.objects.filter(account=user.account)
    assert [(g.kind, g.amount) for g in grants] == [(TokenEntry.SIGNUP_GRANT, 50)]
    assert token_balance(user.account) == 50

    page = client.get("/billing/licenses/")
    assert page.status_code == 200
    assert 'data-token-balance="50"' in text(page)
    assert "dana@shutterbug.example" in text(page)


def test_sign_up_with_an_email_already_in_use_in_another_case_is_refused(db):
    post(browser(), "/signup/", GOOD)
    response = post(browser(), "/signup/", {**GOOD, "company_name": "Copycat", "email": "  DANA@Shutterbug.EXAMPLE "})
    assert response.status_code == 400
    assert "An account with this email already exists. Log in instead." in text(response)
    assert Account.objects.count() == 1
    assert User.objects.count() == 1
    assert TokenEntry.objects.count() == 1


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
