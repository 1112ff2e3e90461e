"""The welcome tokens come when the owner opens the link emailed at sign-up: once, whoever clicks how often."""

import re

import pytest
from django.core import signing
from django.test import Client

from accounts.models import User
from billing.signup import VERIFY_MAX_AGE, email_verification_token
from tests.factories import PASSWORD
from tests.helpers import post, text
from tokens.models import TokenEntry
from tokens.services import token_balance

GOOD = {"company_name": "Shutterbug Events", "email": "dana@shutterbug.example", "password": PASSWORD}


@pytest.fixture
def signed_up(db, mailoutbox, django_capture_on_commit_callbacks):
    """Dana has signed up (and is logged in on `client`); `link` is the path in her verification email."""
    client = Client(enforce_csrf_checks=True)
    with django_capture_on_commit_callbacks(execute=True):
        post(client, "/signup/", GOOD)
    [email] = mailoutbox
    link = re.search(r"http://testserver(/verify-email/[^/\s]+/)", email.body).group(1)
    mailoutbox.clear()
    return client, User.objects.get(email=GOOD["email"]), link


def grants(account) -> int:
    return TokenEntry.objects.filter(account=account, kind=TokenEntry.SIGNUP_GRANT).count()


def test_opening_the_link_verifies_the_email_and_adds_fifty_tokens(signed_up):
    client, dana, link = signed_up
    response = client.get(link, follow=True)
    assert response.redirect_chain == [("/billing/licenses/", 302)]
    assert "Your email is confirmed: 50 free tokens were added." in text(response)
    assert 'data-token-balance="50"' in text(response)
    assert 'data-banner="verify-email"' not in text(response)
    dana.refresh_from_db()
    assert dana.email_verified_at is not None
    assert token_balance(dana.account) == 50


def test_opening_the_link_again_adds_nothing_more(signed_up):
    client, dana, link = signed_up
    client.get(link)
    response = client.get(link, follow=True)
    assert "Your email was already confirmed." in text(response)
    assert grants(dana.account) == 1
    assert token_balance(dana.account) == 50


def test_the_link_works_logged_out_too_and_leads_to_log_in(signed_up):
    _, dana, link = signed_up
    response = Client().get(link, follow=True)
    assert response.redirect_chain == [("/login/", 302)]
    assert "Your email is confirmed: 50 free tokens were added." in text(response)
    assert token_balance(dana.account) == 50


def test_a_tampered_link_is_refused_and_grants_nothing(signed_up):
    client, dana, link = signed_up
    response = client.get(link[:-3] + "xx/", follow=True)
    assert "This confirmation link is invalid or has expired." in text(response)
    assert grants(dana.account) == 0


@pytest.mark.parametrize("token", ["nonsense", "999999:1xYa1J:forged", ":", "1:2:3:4"])
def test_a_link_naming_no_user_or_a_garbled_one_is_refused(signed_up, token):
    client, dana, _ = signed_up
    assert "invalid or has expired" in text(client.get(f"/verify-email/{token}/", follow=True))
    assert grants(dana.account) == 0


def test_a_link_older_than_a_week_is_refused(signed_up, monkeypatch):
    client, dana, _ = signed_up
    now = signing.b62_decode(signing.TimestampSigner().timestamp())
    with monkeypatch.context() as patched:  # a link made a week and a second ago
        patched.setattr(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(now - VERIFY_MAX_AGE - 1))
        stale = email_verification_token(dana)
    response = client.get(f"/verify-email/{stale}/", follow=True)
    assert "This confirmation link is invalid or has expired." in text(response)
    assert grants(dana.account) == 0


def test_a_link_for_an_email_the_user_no_longer_has_is_refused(signed_up):
    client, dana, link = signed_up
    User.objects.filter(pk=dana.pk).update(email="dana@elsewhere.example")
    assert "invalid or has expired" in text(client.get(link, follow=True))
    assert grants(dana.account) == 0


def test_a_token_made_for_another_purpose_is_refused(signed_up):
    client, dana, _ = signed_up
    forged = signing.TimestampSigner(salt="another.salt").sign(str(dana.pk))
    assert "invalid or has expired" in text(client.get(f"/verify-email/{forged}/", follow=True))
    assert grants(dana.account) == 0


def test_a_team_member_verifying_later_adds_no_second_grant(signed_up):
    client, dana, link = signed_up
    client.get(link)
    teammate = User.objects.create_user(email="sam@shutterbug.example", password=PASSWORD, account=dana.account)
    Client().get(f"/verify-email/{email_verification_token(teammate)}/")
    teammate.refresh_from_db()
    assert teammate.email_verified_at is not None
    assert grants(dana.account) == 1


def test_the_banner_sends_the_link_again_but_not_twice_a_minute(signed_up, mailoutbox,
                                                                django_capture_on_commit_callbacks):
    client, dana, _ = signed_up
    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, "/verify-email/send/", follow=True)
        second = post(client, "/verify-email/send/", follow=True)
    assert "We sent a new link to dana@shutterbug.example." in text(first)
    assert "a moment ago" in text(second)
    [email] = mailoutbox
    link = re.search(r"http://testserver(/verify-email/[^/\s]+/)", email.body).group(1)
    client.get(link)
    assert token_balance(dana.account) == 50


def test_sending_the_link_again_needs_a_login_and_the_csrf_token(signed_up):
    client, _, _ = signed_up
    assert client.post("/verify-email/send/").status_code == 403
    assert Client().post("/verify-email/send/")["Location"].startswith("/login/")
