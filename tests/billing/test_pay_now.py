"""Pay now: a past-due renewal shows a banner with its amount on every tab; paying it, with the default card or
a new card entered on the same page, clears it at once; a refusal charges nothing and says why."""

import datetime

import pytest

from billing.clocks import clock_advance, clock_attach
from billing.models import Renewal
from invoices.models import Invoice
from licenses.models import License
from payments.models import Card, PaymentAttempt
from payments.services import card_make_default
from tests.conftest import DECLINES_CHARGES, NEEDS_AUTHENTICATION, VISA, add_card
from tests.helpers import buy_directly, post, processor_money, text

UTC = datetime.UTC
TABS = ["/billing/licenses/", "/billing/payment/", "/billing/invoices/"]


def new_card(number, **extra):
    return {"card": "new", "new-number": number, "new-exp_month": "12", "new-exp_year": "2031", "new-cvc": "123",
            **extra}


@pytest.fixture
def past_due(prices, alice):
    """Alice's account on a test clock: 2 Pro monthly bought Mar 10, 2027 with a Visa; her default card is
    then one that declines, so the Apr 10 renewal ($198.00: 2 × $99, below the first bracket) is past due."""
    account = clock_attach(account=alice.account, start=datetime.datetime(2027, 3, 10, 9, tzinfo=UTC))
    add_card(account, VISA)
    buy_directly(account, alice, quantity=2)
    card_make_default(account=account, card=add_card(account, DECLINES_CHARGES))
    clock_advance(account=account, to=datetime.datetime(2027, 4, 10, 12, tzinfo=UTC))
    renewal = Renewal.objects.get(account=account)
    assert renewal.status == Renewal.PAST_DUE
    return renewal


def test_a_past_due_renewal_shows_a_banner_with_its_amount_on_every_tab(alice_client, past_due):
    for url in TABS:
        body = text(alice_client.get(url))
        assert 'data-banner="past-due"' in body, url
        assert "Your renewal of $198.00 on Apr 10, 2027 could not be charged" in body, url
        assert f'href="/billing/renewals/{past_due.pk}/pay/"' in body, url


def test_pay_now_shows_what_is_owed_and_the_card_it_will_charge(alice_client, past_due):
    body = text(alice_client.get(f"/billing/renewals/{past_due.pk}/pay/"))
    assert "Total due now" in body and "$198.00" in body
    assert "Pay $198.00 with Visa ending 0341" in body
    assert "we try again on Apr 11" in body
    assert "Save card and pay $198.00" in body


def test_paying_with_a_new_card_clears_past_due_at_once(alice_client, alice, past_due):
    response = post(alice_client, f"/billing/renewals/{past_due.pk}/pay/", new_card(VISA), follow=True)
    assert response.redirect_chain[-1][0] == "/billing/licenses/"
    body = text(response)
    assert "Paid: $198.00 charged to Visa ending 4242" in body
    assert 'data-banner="past-due"' not in body
    invoice = Invoice.objects.get(pk=past_due.invoice_id)
    assert invoice.status == Invoice.PAID
    assert Renewal.objects.get(pk=past_due.pk).status == Renewal.PAID
    assert set(License.objects.filter(account=alice.account).values_list("status", flat=True)) == {License.ACTIVE}
    default = Card.objects.get(account=alice.account, is_default=True)
    assert default.last4 == "4242" and default.pk != Card.objects.filter(last4="4242").order_by("pk").first().pk
    # What the processor holds: the purchase's $198.00 and this payment's $198.00.
    assert processor_money() == 39600


def test_a_declined_default_card_charges_nothing_and_keeps_past_due(alice_client, alice, past_due):
    response = post(alice_client, f"/billing/renewals/{past_due.pk}/pay/")
    assert response.status_code == 402
    assert "Your card was declined. Nothing was charged: try another card." in text(response)
    assert Invoice.objects.get(pk=past_due.invoice_id).status == Invoice.OPEN
    renewal = Renewal.objects.get(pk=past_due.pk)
    # An on-session refusal is not a dunning attempt: the retry schedule stands.
    assert (renewal.status, renewal.failed_attempts, renewal.next_retry_on) == (
        Renewal.PAST_DUE, 1, datetime.date(2027, 4, 11))


@pytest.mark.parametrize(("data", "says"), [
    (new_card("4242 4242 4242 4241"), "That card number is not valid. Nothing was charged."),
    (new_card("4000000000000002"), "Your card was declined."),
    (new_card(VISA, **{"new-exp_year": "2026"}), "Check the card details"),
    (new_card(VISA, **{"new-cvc": "1"}), "Check the card details"),
    (new_card("4" * 200), "Check the card details"),
])
def test_a_bad_new_card_saves_nothing_and_charges_nothing(alice_client, alice, past_due, data, says):
    cards, attempts = Card.objects.count(), PaymentAttempt.objects.count()
    response = post(alice_client, f"/billing/renewals/{past_due.pk}/pay/", data)
    assert response.status_code == 400
    assert says in text(response)
    assert (Card.objects.count(), PaymentAttempt.objects.count()) == (cards, attempts)
    assert Invoice.objects.get(pk=past_due.invoice_id).status == Invoice.OPEN


def test_a_card_that_needs_authentication_is_confirmed_then_paid(alice_client, alice, past_due):
    response = post(alice_client, f"/billing/renewals/{past_due.pk}/pay/", new_card(NEEDS_AUTHENTICATION))
    attempt = PaymentAttempt.objects.filter(invoice_id=past_due.invoice_id).latest("pk")
    assert attempt.status == PaymentAttempt.REQUIRES_ACTION
    assert response["Location"] == f"/billing/payments/{attempt.pk}/confirm/"
    response = post(alice_client, response["Location"], {"action": "approve"}, follow=True)
    assert "Paid: $198.00 charged to Visa ending 3184" in text(response)
    assert Invoice.objects.get(pk=past_due.invoice_id).status == Invoice.PAID
    assert Renewal.objects.get(pk=past_due.pk).status == Renewal.PAID


def test_paying_twice_charges_once(alice_client, past_due):
    post(alice_client, f"/billing/renewals/{past_due.pk}/pay/", new_card(VISA))
    response = post(alice_client, f"/billing/renewals/{past_due.pk}/pay/", follow=True)
    assert "not waiting for payment" in text(response)
    assert PaymentAttempt.objects.filter(invoice_id=past_due.invoice_id,
                                         status=PaymentAttempt.SUCCEEDED).count() == 1


def test_another_account_cannot_see_or_pay_the_renewal(past_due, charlie):
    from tests.conftest import logged_in

    client = logged_in(charlie)
    assert client.get(f"/billing/renewals/{past_due.pk}/pay/").status_code == 404
    assert post(client, f"/billing/renewals/{past_due.pk}/pay/", new_card(VISA)).status_code == 404
    assert Invoice.objects.get(pk=past_due.invoice_id).status == Invoice.OPEN


def test_the_licenses_tab_says_what_renews_next_and_for_how_much(alice_client, prices, alice):
    add_card(alice.account)
    buy_directly(alice.account, alice, quantity=5, now=datetime.datetime(2027, 3, 10, 9, tzinfo=UTC))
    body = text(alice_client.get("/billing/licenses/"))
    # 5 Pro monthly at $99 = $495.00, 10% bracket from 5 licenses: -$49.50, so $445.50 on Apr 10.
    assert "Next renewal:" in body
    assert 'datetime="2027-04-10"' in body
    assert "5 Pro monthly" in body
    assert '<data value="445.50" data-summary="next_renewal_total">$445.50</data>' in body
    assert "charged to Visa ending 4242" in body
    assert 'data-credit-balance>$0.00' in body
