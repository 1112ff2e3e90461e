"""One scenario suite, run once on the sandbox and once on the Stripe gateway against localstripe:
a purchase, a top-up, a renewal through a test clock, dunning with a card that declines charges (0341)
until a good card pays the retry, and a refund. Our books must say the same thing on both; and on
each, the processor's own record of what it took must equal ours."""

import datetime
import uuid
from decimal import Decimal

import pytest

from accounts.models import User
from billing.clocks import clock_advance, clock_attach
from billing.models import Renewal
from billing.purchase import license_purchase
from billing.support import invoice_refund
from billing.top_up import tokens_top_up
from invoices.models import Invoice
from licenses.models import License
from payments.models import PaymentAttempt
from payments.services import card_make_default, card_setup_begin, card_setup_finish
from tests.conftest import DECLINES_CHARGES, VISA, add_card
from tests.stripe.conftest import browser_card
from tokens.services import token_balance

D = Decimal
UTC = datetime.UTC
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["sandbox", "stripe"])
def gateway(request, settings):
    """The gateway for this run, and how a card is added through it (our form, or Stripe.js)."""
    if request.param == "sandbox":
        return "sandbox", lambda account, number: add_card(account, number), None
    client = request.getfixturevalue("stripe_on")

    def add(account, number):
        setup = card_setup_begin(account=account)
        return card_setup_finish(account=account, setup_ref=browser_card(client, setup["client_secret"], number))

    return "stripe", add, client


def taken_cents(name, client) -> int:
    """What the processor says it took for our successful attempts, less what it refunded."""
    total = 0
    for attempt in PaymentAttempt.objects.filter(status__in=[PaymentAttempt.SUCCEEDED, PaymentAttempt.REFUNDED]):
        if attempt.kind == PaymentAttempt.REFUND:
            continue
        if name == "sandbox":
            from payments.sandbox import SandboxGateway

            outcome = SandboxGateway().lookup(processor_ref=attempt.processor_ref)
            total += outcome.amount_cents - outcome.amount_refunded_cents
        else:
            intent = client.v1.payment_intents.retrieve(attempt.processor_ref)
            charge = intent.latest_charge if isinstance(intent.latest_charge, str) else intent.latest_charge.id
            total += intent.amount - client.v1.charges.retrieve(charge).amount_refunded
    return total


def test_the_same_year_on_either_gateway(gateway, prices, packages, alice):
    name, add, client = gateway
    account = clock_attach(account=alice.account, start=datetime.datetime(2027, 3, 1, 9, tzinfo=UTC))
    add(account, VISA)

    # A purchase: 2 Pro monthly, $198.00.
    purchase, _ = license_purchase(account=account, user=alice, token=uuid.uuid4().hex, tier="pro",
                                   period="monthly", quantity=2)
    assert purchase.invoice.status == Invoice.PAID and purchase.invoice.total == D("198.00")
    # A top-up: the first package.
    top_up, _ = tokens_top_up(account=account, package=packages[0], token=uuid.uuid4().hex)
    assert top_up.invoice.status == Invoice.PAID
    assert token_balance(account) == packages[0].tokens

    # Apr 1: the renewal is charged off-session: $198.00.
    clock_advance(account=account, to=datetime.datetime(2027, 4, 1, 12, tzinfo=UTC))
    april = Renewal.objects.get(account=account, billing_date=datetime.date(2027, 4, 1))
    assert (april.status, april.invoice.total) == (Renewal.PAID, D("198.00"))

    # May 1 on a card that declines every charge: past due; retried on May 2 (declined again); a good
    # card made default pays the May 4 retry.
    card_make_default(account=account, card=add(account, DECLINES_CHARGES))
    clock_advance(account=account, to=datetime.datetime(2027, 5, 2, 12, tzinfo=UTC))
    may = Renewal.objects.get(account=account, billing_date=datetime.date(2027, 5, 1))
    assert (may.status, may.failed_attempts) == (Renewal.PAST_DUE, 2)
    assert set(License.objects.values_list("status", flat=True)) == {License.PAST_DUE}
    card_make_default(account=account, card=add(account, VISA))
    clock_advance(account=account, to=datetime.datetime(2027, 5, 4, 12, tzinfo=UTC))
    may.refresh_from_db()
    assert (may.status, may.invoice.status) == (Renewal.PAID, Invoice.PAID)
    assert set(License.objects.values_list("status", flat=True)) == {License.ACTIVE}
    assert list(PaymentAttempt.objects.filter(invoice=may.invoice).order_by("pk").values_list("status", flat=True)) \
        == ["failed", "failed", "succeeded"]

    # A refund of $50.00 of the purchase, to its card.
    admin = User.objects.create_superuser(email="support@pictor.example", password="x-Support-secret-1")
    refund, note = invoice_refund(invoice=purchase.invoice, amount=D("50.00"), admin=admin, reason="Goodwill")
    assert refund.status == PaymentAttempt.SUCCEEDED and note.total == D("-50.00")

    # The books: $198 + top-up + $198 + $198 − $50, in cents, on our side and at the processor.
    ours = int((D("198.00") * 3 + packages[0].price - D("50.00")) * 100)
    assert taken_cents(name, client) == ours
