"""Password reset by email, with Django's own views: the link is on the log-in page, works once, and
says nothing about whether an email has an account."""

import re

from django.test import Client

from tests.factories import PASSWORD
from tests.helpers import post, text

NEW_PASSWORD = "a brand new shutter 2027"


def reset_link(mailoutbox) -> str:
    [email] = mailoutbox
    return re.search(r"http://testserver(/password-reset/[^/\s]+/[^/\s]+/)", email.body).group(1)


def test_the_log_in_page_links_to_password_reset(db):
    page = text(Client().get("/login/"))
    assert '<a href="/password-reset/">Forgot password?</a>' in page


def test_a_user_resets_a_forgotten_password_by_email_and_logs_in_with_the_new_one(alice, mailoutbox):
    client = Client(enforce_csrf_checks=True)
    response = post(client, "/password-reset/", {"email": "Alice@Example.com"})
    assert response["Location"] == "/password-reset/sent/"
    assert "Check your email" in text(client.get("/password-reset/sent/"))
    assert mailoutbox[0].to == ["alice@example.com"]
    assert mailoutbox[0].subject == "Reset your Pictor Billing password"

    form_page = client.get(reset_link(mailoutbox), follow=True)
    assert "Choose a new password" in text(form_page)
    response = post(client, form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD,
                                                              "new_password2": NEW_PASSWORD})
    assert response["Location"] == "/password-reset/done/"
    assert "Your new password is set." in text(client.get("/password-reset/done/"))

    assert post(Client(enforce_csrf_checks=True), "/login/", {"username": "alice@example.com",
                                                              "password": PASSWORD}).status_code == 200
    assert post(Client(enforce_csrf_checks=True), "/login/", {"username": "alice@example.com",
                                                              "password": NEW_PASSWORD}).status_code == 302


def test_a_reset_link_works_once(alice, mailoutbox):
    client = Client(enforce_csrf_checks=True)
    post(client, "/password-reset/", {"email": "alice@example.com"})
    link = reset_link(mailoutbox)
    form_url = client.get(link, follow=True).redirect_chain[-1][0]
    post(client, form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    again = Client().get(link, follow=True)
    assert "This link is invalid or was already used." in text(again)


def test_an_unknown_email_gets_the_same_answer_and_no_email(db, mailoutbox):
    response = post(Client(enforce_csrf_checks=True), "/password-reset/", {"email": "nobody@example.com"})
    assert response["Location"] == "/password-reset/sent/"
    assert mailoutbox == []


def test_a_weak_new_password_is_refused(alice, mailoutbox):
    client = Client(enforce_csrf_checks=True)
    post(client, "/password-reset/", {"email": "alice@example.com"})
    form_url = client.get(reset_link(mailoutbox), follow=True).redirect_chain[-1][0]
    response = post(client, form_url, {"new_password1": "12345678", "new_password2": "12345678"})
    assert response.status_code == 200
    assert "This password is too common." in text(response)
