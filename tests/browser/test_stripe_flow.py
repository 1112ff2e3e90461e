"""In Chromium with PAYMENT_GATEWAY=stripe against localstripe: the owner adds a card in Stripe.js's card
Element (localstripe's own Stripe.js stand-in) and buys a license with it; the number never reaches us."""

import re

import pytest
from playwright.sync_api import Page, expect

from payments.models import Card, PaymentAttempt
from tests.browser.test_billing_flow import loaded, log_in, open_tab
from tests.factories import AccountFactory, UserFactory

pytestmark = [pytest.mark.browser]


def test_a_card_added_in_stripes_element_buys_a_license(page: Page, catalogue, stripe_on, live_server):
    user = UserFactory(email="owner@booths.example", account=AccountFactory(name="Booths Ltd"))
    to_pictor, to_stripe = [], []

    def seen(request):
        if request.method == "POST":
            (to_pictor if request.url.startswith(live_server.url) else to_stripe).append(request.post_data or "")

    page.on("request", seen)
    log_in(page, user.email)

    open_tab(page, "Payment", "/billing/payment/")
    page.get_by_role("link", name="Add card", exact=True).click()
    loaded(page, "/billing/payment/cards/add/")  # Stripe.js needs a page of its own
    expect(page.get_by_role("heading", name="Add card")).to_be_visible()
    element = page.locator("[data-card-element]")
    element.get_by_placeholder("number").fill("4242424242424242")
    element.get_by_placeholder("exp_month").fill("12")
    element.get_by_placeholder("exp_year").fill("31")
    element.get_by_placeholder("cvc").fill("123")
    element.get_by_placeholder("postal_code").fill("94105")
    page.get_by_role("button", name="Save card").click()
    expect(page.get_by_text("Visa ending 4242 added. It is your default card.")).to_be_visible()
    card = Card.objects.get(account=user.account)
    assert card.gateway == "stripe" and card.gateway_ref.startswith("cus_")
    assert any("4242424242424242" in body for body in to_stripe), "the card went to Stripe"
    assert any("setup_intent=seti_" in body for body in to_pictor)
    assert not any("4242424242424242" in body for body in to_pictor), "Pictor never receives the number"

    open_tab(page, "Licenses", "/billing/licenses/")
    page.get_by_role("link", name="Add License", exact=True).click()
    modal = page.get_by_role("dialog", name="Add License")
    expect(modal.get_by_role("button", name=re.compile(r"Pay \$99\.00 with Visa ending 4242"))).to_be_enabled()
    modal.get_by_role("button", name=re.compile(r"Pay \$99\.00")).click()
    expect(page.get_by_text(re.compile(r"Purchase complete: 1 Pro license, monthly\. \$99\.00 charged to Visa "
                                       r"ending 4242"))).to_be_visible()
    attempt = PaymentAttempt.objects.get(account=user.account)
    intent = stripe_on.v1.payment_intents.retrieve(attempt.processor_ref)
    assert (intent.status, intent.amount) == ("succeeded", 9900)


def test_a_card_that_needs_3d_secure_is_confirmed_with_stripe_js_then_the_license_is_bought(page: Page, catalogue,
                                                                                           stripe_on):
    from payments.services import card_setup_begin, card_setup_finish
    from tests.stripe.conftest import browser_card

    user = UserFactory(email="owner@booths.example", account=AccountFactory(name="Booths Ltd"))
    setup = card_setup_begin(account=user.account)
    card_setup_finish(account=user.account, setup_ref=browser_card(stripe_on, setup["client_secret"],
                                                                    "4000002760003184"))
    log_in(page, user.email)
    page.get_by_role("link", name="Add License", exact=True).click()
    modal = page.get_by_role("dialog", name="Add License")
    modal.get_by_role("button", name=re.compile(r"Pay \$99\.00 with Visa ending 3184")).click()
    expect(page.get_by_role("heading", name="Confirm your payment")).to_be_visible()
    page.get_by_role("button", name="Confirm $99.00 with your bank").click()
    # localstripe's Stripe.js stands in for the bank's 3-D Secure window.
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.get_by_text(re.compile(r"Purchase complete: 1 Pro license, monthly\. \$99\.00 charged to Visa "
                                       r"ending 3184"))).to_be_visible()
    attempt = PaymentAttempt.objects.get(account=user.account)
    assert attempt.status == PaymentAttempt.SUCCEEDED
    assert stripe_on.v1.payment_intents.retrieve(attempt.processor_ref).status == "succeeded"


def test_the_bank_check_cannot_be_pressed_before_the_page_can_ask_the_bank(page: Page, catalogue, stripe_on):
    """Pressed before stripe_card.js had wired the form, the button posted a payment nobody had confirmed
    with the bank (a 409). It is rendered disabled and only the script enables it: here the script never
    arrives, so there is nothing to press."""
    from payments.services import card_setup_begin, card_setup_finish
    from tests.stripe.conftest import browser_card

    user = UserFactory(email="owner@booths.example", account=AccountFactory(name="Booths Ltd"))
    setup = card_setup_begin(account=user.account)
    card_setup_finish(account=user.account, setup_ref=browser_card(stripe_on, setup["client_secret"],
                                                                    "4000002760003184"))
    log_in(page, user.email)
    page.route(re.compile(r"/static/stripe_card[^/]*\.js"), lambda route: route.abort())
    page.get_by_role("link", name="Add License", exact=True).click()
    modal = page.get_by_role("dialog", name="Add License")
    modal.get_by_role("button", name=re.compile(r"Pay \$99\.00 with Visa ending 3184")).click()
    expect(page.get_by_role("heading", name="Confirm your payment")).to_be_visible()
    page.wait_for_load_state("load")
    expect(page.get_by_role("button", name="Confirm $99.00 with your bank")).to_be_disabled()
    assert PaymentAttempt.objects.get(account=user.account).status == PaymentAttempt.REQUIRES_ACTION
