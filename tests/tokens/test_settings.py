"""The low-balance and auto top-up settings form on the Token activity page, and the banner a decline leaves."""

import pytest
from django.core import mail
from django.test import Client

from payments.models import Card
from tests.conftest import logged_in
from tests.helpers import post, text
from tokens.models import TokenSettings
from tokens.services import tokens_grant_signup

URL = "/billing/tokens/settings/"
DECLINE_REASON = "Your card was declined."


def choices(package=None, **overrides) -> dict:
    data = {"low_balance_threshold": 20, "auto_top_up_threshold": 50, "auto_top_up_monthly_limit": 3,
            "auto_top_up_package": package.pk if package else ""}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def starter(packages):
    return packages[0]


@pytest.fixture
def account(alice):
    tokens_grant_signup(account=alice.account)
    return alice.account


def test_the_form_shows_the_defaults_before_anything_is_saved(account, alice_client):
    body = text(alice_client.get("/billing/tokens/"))
    assert 'name="low_balance_threshold" id="id_low_balance_threshold"' in body
    assert 'value="20"' in body  # low-balance alert
    assert 'name="auto_top_up" id="id_auto_top_up">' in body  # unchecked
    assert not TokenSettings.objects.exists()  # showing the page writes nothing


def test_switching_auto_top_up_on_saves_every_choice(account, alice_client, alice_card, starter):
    response = post(alice_client, URL, choices(starter, auto_top_up="on", auto_top_up_threshold=40,
                                               auto_top_up_monthly_limit=31, low_balance_threshold=25))
    assert response.status_code == 302
    assert response["Location"] == "/billing/tokens/#token-settings"
    prefs = TokenSettings.objects.get(account=account)
    assert (prefs.auto_top_up, prefs.auto_top_up_threshold, prefs.auto_top_up_package, prefs.auto_top_up_monthly_limit,
            prefs.low_balance_threshold) == (True, 40, starter, 31, 25)
    page = text(alice_client.get("/billing/tokens/"))
    assert "Token settings saved. Auto top-up is on: Starter below 40 tokens." in page
    assert 'name="auto_top_up" id="id_auto_top_up" checked>' in page


def test_a_teammate_can_change_the_settings_too(account, bob, alice_card, starter):
    assert post(logged_in(bob), URL, choices(starter, auto_top_up="on")).status_code == 302
    assert TokenSettings.objects.get(account=account).auto_top_up


def test_switching_it_off_keeps_the_other_choices(account, alice_client, alice_card, starter):
    post(alice_client, URL, choices(starter, auto_top_up="on"))
    post(alice_client, URL, choices(starter))
    prefs = TokenSettings.objects.get(account=account)
    assert (prefs.auto_top_up, prefs.auto_top_up_package) == (False, starter)
    assert "Auto top-up is off." in text(alice_client.get("/billing/tokens/"))


def test_switching_it_on_needs_a_default_card(account, alice_client, starter):
    response = post(alice_client, URL, choices(starter, auto_top_up="on"))
    assert response.status_code == 400
    assert ("Add a card before switching on auto top-up: it is charged to your default card. Nothing was saved."
            in text(response))
    assert not TokenSettings.objects.filter(auto_top_up=True).exists()


def test_switching_it_on_with_an_expired_default_card_is_refused(account, alice_client, alice_card, starter):
    Card.objects.filter(pk=alice_card.pk).update(exp_year=2020)
    response = post(alice_client, URL, choices(starter, auto_top_up="on"))
    assert response.status_code == 400
    assert "Your default card has expired." in text(response)
    assert not TokenSettings.objects.filter(auto_top_up=True).exists()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"auto_top_up": "on", "auto_top_up_package": ""}, "Choose the package auto top-up buys."),
    ({"auto_top_up_package": "99999"}, "Choose one of the packages on offer."),
    ({"auto_top_up_monthly_limit": 0}, "Choose from 1 to 31 times a month."),
    ({"auto_top_up_monthly_limit": 32}, "Choose from 1 to 31 times a month."),
    ({"auto_top_up_monthly_limit": "many"}, "Enter a whole number."),
    ({"low_balance_threshold": -1}, "Ensure this value is greater than or equal to 0."),
    ({"low_balance_threshold": None}, "This field is required."),
    ({"auto_top_up_threshold": 0}, "Ensure this value is greater than or equal to 1."),
])
def test_bad_settings_are_a_400_that_says_why_and_save_nothing(account, alice_client, alice_card, starter,
                                                               overrides, message):
    response = post(alice_client, URL, choices(starter, **overrides))
    assert response.status_code == 400
    body = text(response)
    assert "Please correct the highlighted settings. Nothing was saved." in body
    assert message in body
    assert not TokenSettings.objects.exists()


@pytest.mark.parametrize("field", ["auto_top_up_failure", "low_balance_alerted", "account"])
def test_fields_the_form_never_reads_are_refused(account, alice_client, alice_card, starter, field):
    response = post(alice_client, URL, {**choices(starter), field: "1"})
    assert response.status_code == 400
    assert "Unexpected field(s)" in text(response)
    assert not TokenSettings.objects.exists()


def test_an_anonymous_post_is_sent_to_log_in_and_saves_nothing(account, starter):
    client = Client()
    response = client.post(URL, choices(starter, low_balance_threshold=999))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not TokenSettings.objects.exists()


def test_raising_the_alert_above_the_balance_flags_it_and_emails_once(account, alice_client,
                                                                    django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post(alice_client, URL, choices(low_balance_threshold=60))
        post(alice_client, URL, choices(low_balance_threshold=70))
    assert [m.subject for m in mail.outbox] == ["Your Pictor token balance is low"]
    assert "data-low-balance" in text(alice_client.get("/billing/licenses/"))


class TestDeclineBanner:
    @pytest.fixture
    def switched_off(self, account, starter):
        return TokenSettings.objects.create(account=account, auto_top_up=False, auto_top_up_package=starter,
                                            auto_top_up_failure=DECLINE_REASON)

    @pytest.mark.parametrize("url", ["/billing/licenses/", "/billing/payment/", "/billing/invoices/",
                                     "/billing/tokens/", "/billing/tokens/estimate/", "/billing/tokens/top-up/"])
    def test_it_shows_on_every_billing_page(self, switched_off, alice_client, url):
        body = text(alice_client.get(url))
        assert ('<p class="banner banner-danger" role="alert" data-banner="auto-top-up-off">Auto top-up is off: '
                f'{DECLINE_REASON} <a href="/billing/tokens/#token-settings">Switch it on again</a>') in body

    def test_saving_other_settings_keeps_it(self, switched_off, alice_client, alice_card, starter):
        post(alice_client, URL, choices(starter, low_balance_threshold=5))
        assert "data-banner=\"auto-top-up-off\"" in text(alice_client.get("/billing/licenses/"))

    def test_switching_auto_top_up_on_again_clears_it(self, switched_off, alice_client, alice_card, starter):
        post(alice_client, URL, choices(starter, auto_top_up="on"))
        switched_off.refresh_from_db()
        assert (switched_off.auto_top_up, switched_off.auto_top_up_failure) == (True, "")
        assert "data-banner=\"auto-top-up-off\"" not in text(alice_client.get("/billing/licenses/"))

    def test_another_account_never_sees_it(self, switched_off, charlie):
        assert "auto-top-up-off" not in text(logged_in(charlie).get("/billing/licenses/"))
