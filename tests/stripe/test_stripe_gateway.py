"""The Stripe gateway against a running Stripe emulator (localstripe): customers, cards through a
SetupIntent, the default payment method, PaymentIntents (hold and capture, one-step charges), declines
when saved (0002, 9995) and when charged (0341), 3-D Secure (3184) on-session and off-session,
refunds, and a processor that does not answer. Our books are checked against the emulator's."""

import datetime
import uuid
from decimal import Decimal

import pytest

from billing.checkout import PaymentNeedsAction, checkout_continue
from billing.clocks import clock_advance, clock_attach
from billing.models import Renewal
from billing.purchase import license_purchase
from billing.support import invoice_refund
from invoices.models import Invoice
from licenses.models import License, Purchase
from payments.gateway import CardError
from payments.models import Card, PaymentAttempt, ProcessorCustomer
from payments.services import (
    PaymentDeclined,
    attempt_refresh,
    card_make_default,
    card_remove,
    card_setup_begin,
    card_setup_finish,
)
from tests.conftest import DECLINED, DECLINES_CHARGES, INSUFFICIENT, NEEDS_AUTHENTICATION, VISA
from tests.stripe.conftest import browser_card

D = Decimal
UTC = datetime.UTC
pytestmark = pytest.mark.django_db(transaction=True)  # the gateway's card calls run after commit


def add_stripe_card(client, account, number=VISA) -> Card:
    setup = card_setup_begin(account=account)
    return card_setup_finish(account=account, setup_ref=browser_card(client, setup["client_secret"], number))


def buy(account, user=None, **choices):
    choices = {"tier": "pro", "period": "monthly", "quantity": 1, **choices}
    return license_purchase(account=account, user=user, token=uuid.uuid4().hex, **choices)


def test_a_card_is_saved_through_a_setup_intent_on_the_accounts_customer(stripe_on, alice):
    card = add_stripe_card(stripe_on, alice.account)
    customer = ProcessorCustomer.objects.get(account=alice.account, gateway="stripe").customer_ref
    assert (card.brand, card.last4, card.exp_month, card.exp_year, card.is_default) == ("Visa", "4242", 12, 2031, True)
    assert card.gateway_ref.startswith(f"{customer}/pm_")
    stripe_customer = stripe_on.v1.customers.retrieve(customer)
    assert stripe_customer.invoice_settings.default_payment_method == card.gateway_ref.split("/")[1]
    # A second card reuses the customer; making it default tells Stripe too.
    second = add_stripe_card(stripe_on, alice.account, "5555555555554444")
    assert ProcessorCustomer.objects.count() == 1 and not second.is_default
    card_make_default(account=alice.account, card=second)
    assert stripe_on.v1.customers.retrieve(customer).invoice_settings.default_payment_method == \
        second.gateway_ref.split("/")[1]


@pytest.mark.parametrize("number", [DECLINED, INSUFFICIENT])
def test_a_card_refused_when_saved_saves_nothing(stripe_on, alice, number):
    import stripe

    setup = card_setup_begin(account=alice.account)
    with pytest.raises(stripe.CardError):
        browser_card(stripe_on, setup["client_secret"], number)  # Stripe.js shows the refusal
    with pytest.raises(CardError):
        card_setup_finish(account=alice.account, setup_ref=setup["id"])  # a form posted anyway
    assert not Card.objects.exists()


def test_someone_elses_setup_intent_is_refused(stripe_on, alice, charlie):
    setup = card_setup_begin(account=charlie.account)
    setup_ref = browser_card(stripe_on, setup["client_secret"], VISA)
    with pytest.raises(CardError, match="someone else"):
        card_setup_finish(account=alice.account, setup_ref=setup_ref)
    assert not Card.objects.filter(account=alice.account).exists()


def test_a_purchase_holds_then_captures_with_the_attempts_key_and_id(stripe_on, prices, alice):
    add_stripe_card(stripe_on, alice.account)
    purchase, created = buy(alice.account, alice)
    attempt = PaymentAttempt.objects.get(purpose=PaymentAttempt.PURCHASE)
    assert created and purchase.invoice.status == Invoice.PAID and attempt.status == PaymentAttempt.SUCCEEDED
    intent = stripe_on.v1.payment_intents.retrieve(attempt.processor_ref)
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", 9900, "usd")
    assert intent.metadata["attempt_id"] == str(attempt.pk)


def test_a_card_declined_when_charged_buys_nothing(stripe_on, prices, alice):
    add_stripe_card(stripe_on, alice.account, DECLINES_CHARGES)
    with pytest.raises(PaymentDeclined, match="Your card was declined."):
        buy(alice.account, alice)
    assert not Purchase.objects.exists() and not Invoice.objects.exists()
    assert PaymentAttempt.objects.get().status == PaymentAttempt.FAILED


def test_3d_secure_on_session_is_confirmed_in_the_browser_then_the_purchase_completes(stripe_on, prices, alice):
    add_stripe_card(stripe_on, alice.account, NEEDS_AUTHENTICATION)
    with pytest.raises(PaymentNeedsAction) as needs:
        buy(alice.account, alice)
    attempt = needs.value.attempt
    secret = attempt.processor_answer["client_secret"]
    assert secret.startswith(attempt.processor_ref)
    # stripe.confirmCardPayment in the browser: the cardholder passes 3-D Secure.
    stripe_on._requestor.request("post", f"/v1/payment_intents/{attempt.processor_ref}/_authenticate",
                                 params={"client_secret": secret, "success": "true"}, base_address="api")
    purchase = checkout_continue(attempt_refresh(attempt))
    assert purchase.invoice.status == Invoice.PAID
    assert stripe_on.v1.payment_intents.retrieve(attempt.processor_ref).status == "succeeded"


def test_off_session_a_card_that_needs_authentication_fails_the_renewal_and_nothing_is_held(stripe_on, prices,
                                                                                             alice):
    account = clock_attach(account=alice.account, start=datetime.datetime(2027, 3, 1, 9, tzinfo=UTC))
    add_stripe_card(stripe_on, account)
    buy(account, alice)
    card_make_default(account=account, card=add_stripe_card(stripe_on, account, NEEDS_AUTHENTICATION))
    clock_advance(account=account, to=datetime.datetime(2027, 4, 1, 12, tzinfo=UTC))
    renewal = Renewal.objects.get(account=account)
    attempt = PaymentAttempt.objects.get(purpose=PaymentAttempt.RENEWAL)
    assert (renewal.status, attempt.status) == (Renewal.PAST_DUE, PaymentAttempt.FAILED)
    assert "authentication required" in attempt.failure_reason
    assert stripe_on.v1.payment_intents.retrieve(attempt.processor_ref).status == "canceled"
    assert License.objects.get().status == License.PAST_DUE


def test_a_renewal_is_charged_in_one_step_off_session(stripe_on, prices, alice):
    account = clock_attach(account=alice.account, start=datetime.datetime(2027, 3, 1, 9, tzinfo=UTC))
    add_stripe_card(stripe_on, account)
    buy(account, alice, quantity=2)
    clock_advance(account=account, to=datetime.datetime(2027, 4, 1, 12, tzinfo=UTC))
    renewal = Renewal.objects.get(account=account)
    attempt = PaymentAttempt.objects.get(purpose=PaymentAttempt.RENEWAL)
    assert (renewal.status, renewal.invoice.total) == (Renewal.PAID, D("198.00"))
    intent = stripe_on.v1.payment_intents.retrieve(attempt.processor_ref)
    assert (intent.status, intent.amount) == ("succeeded", 19800)


def test_a_refund_goes_back_through_stripe_and_never_past_what_was_paid(stripe_on, prices, alice):
    from accounts.models import User
    from billing.support import SupportRefused

    add_stripe_card(stripe_on, alice.account)
    purchase, _ = buy(alice.account, alice)
    admin = User.objects.create_superuser(email="support@pictor.example", password="x-Support-secret-1")
    refund, note = invoice_refund(invoice=purchase.invoice, amount=D("40.00"), admin=admin, reason="Late start")
    assert refund.status == PaymentAttempt.SUCCEEDED and note.total == D("-40.00")
    charge = stripe_on.v1.payment_intents.retrieve(refund.processor_ref).latest_charge
    assert stripe_on.v1.charges.retrieve(charge if isinstance(charge, str) else charge.id).amount_refunded == 4000
    with pytest.raises(SupportRefused, match=r"At most \$59.00"):
        invoice_refund(invoice=purchase.invoice, amount=D("60.00"), admin=admin, reason="Too much")


def test_removing_a_card_detaches_it_at_stripe(stripe_on, alice):
    from django.db import transaction

    card = add_stripe_card(stripe_on, alice.account)
    spare = add_stripe_card(stripe_on, alice.account, "5555555555554444")
    with transaction.atomic():
        card_remove(account=alice.account, card=spare, default_required=False)
    assert stripe_on.v1.payment_methods.retrieve(spare.gateway_ref.split("/")[1]).customer is None
    assert stripe_on.v1.payment_methods.retrieve(card.gateway_ref.split("/")[1]).customer is not None


def test_no_answer_from_stripe_leaves_the_attempt_unknown_never_failed(stripe_on, settings, prices, alice):
    from billing.checkout import PaymentPending

    add_stripe_card(stripe_on, alice.account)
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there: the call gets no answer
    with pytest.raises(PaymentPending):
        buy(alice.account, alice)
    assert PaymentAttempt.objects.get().status == PaymentAttempt.UNKNOWN
    assert not Purchase.objects.exists()
