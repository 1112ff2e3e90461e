"""A fault at every step between "attempt recorded" and "settled" ends, after reconciliation, in
either no money taken or the order complete with its invoice paid — never money taken with
nothing recorded (docs/rules.md, "Payments to the processor").

Faults are real exceptions raised where a crash, a timeout or a failed write would strike; the
sandbox processor keeps its own books in a file of its own, so what it took survives our
rollbacks exactly as money at a real processor would.
"""

import datetime
import uuid
from decimal import Decimal

import pytest

from billing import checkout
from billing import purchase as purchase_flow
from billing.checkout import PaymentPending
from billing.purchase import license_purchase
from billing.reconcile import payments_reconcile
from billing.top_up import tokens_top_up
from invoices.models import Invoice
from licenses.models import License, Purchase
from payments import services as payment_services
from payments.gateway import ProcessorUnavailable
from payments.models import PaymentAttempt
from payments.sandbox import SandboxGateway
from tests.helpers import charges, clock_set, processor_money
from tokens.models import TopUp
from tokens.services import token_balance

D = Decimal
NOW = datetime.datetime(2026, 6, 10, 12, 0, tzinfo=datetime.UTC)
RIGHT_AWAY = datetime.timedelta(0)  # reconcile at once: in production it waits RECONCILE_AFTER_SECONDS


class Crash(Exception):
    """The process dying, a lost connection, a failed write: whatever stops a step half-way."""


@pytest.fixture
def account(prices, alice, alice_card):
    clock_set(alice.account, NOW)
    return alice.account


def buy(account, user):
    """Two Pro annual licenses: $1,980.00."""
    return license_purchase(account=account, user=user, token=uuid.uuid4().hex, tier="pro", period="annual",
                            quantity=2)


def after_the_real(monkeypatch, owner, name, fault):
    """Let the real `owner.name` run, then strike with `fault` (the money moved; the answer was lost)."""
    real = getattr(owner, name)

    def struck(self, *args, **kwargs):
        real(self, *args, **kwargs)
        raise fault

    monkeypatch.setattr(owner, name, struck)


def before_the_real(monkeypatch, owner, name, fault):
    """Strike before `owner.name` runs at all."""
    def struck(*args, **kwargs):
        raise fault

    monkeypatch.setattr(owner, name, struck)


def assert_nothing_taken_nothing_recorded(account):
    assert processor_money() == 0
    assert not Purchase.objects.filter(account=account).exists()
    assert not License.objects.filter(account=account).exists()
    assert not Invoice.objects.filter(account=account).exists()
    assert not charges().exists()


def assert_purchase_complete(account):
    purchase = Purchase.objects.get(account=account)
    assert purchase.invoice.status == Invoice.PAID
    assert purchase.invoice.total == D("1980.00")
    assert License.objects.filter(account=account).count() == 2
    attempt = purchase.invoice.payment_attempts.get()
    assert (attempt.status, attempt.amount) == (PaymentAttempt.SUCCEEDED, D("1980.00"))
    assert processor_money() == 198000
    statuses = list(purchase.invoice.status_changes.values_list("to_status", "attempt_id"))
    assert statuses[-1] == (Invoice.PAID, attempt.pk)


# Where a fault strikes, and how the books must end once reconciliation has run.
FAULTS = {
    "before the processor is called": (
        lambda mp: before_the_real(mp, SandboxGateway, "authorize", Crash("died before calling")), "none"),
    "the processor authorized, its answer was lost (timeout)": (
        lambda mp: after_the_real(mp, SandboxGateway, "authorize", ProcessorUnavailable("read timeout")), "complete"),
    "the processor authorized, recording its answer failed": (
        lambda mp: before_the_real(mp, payment_services, "attempt_record", Crash("database gone")), "complete"),
    "recording the purchase failed (its licenses could not be written)": (
        lambda mp: before_the_real(mp, purchase_flow, "licenses_create", Crash("license insert failed")), "none"),
    "the purchase was recorded, the capture was never sent": (
        lambda mp: before_the_real(mp, checkout, "attempt_capture", Crash("died before capture")), "complete"),
    "the processor captured, its answer was lost (timeout)": (
        lambda mp: after_the_real(mp, SandboxGateway, "capture", ProcessorUnavailable("read timeout")), "complete"),
    "the processor captured, recording it failed": (
        lambda mp: after_the_real(mp, SandboxGateway, "capture", Crash("died after capture")), "complete"),
}


@pytest.mark.parametrize("where", list(FAULTS))
def test_a_fault_at_any_step_ends_in_no_money_taken_or_the_purchase_complete(account, alice, monkeypatch, where):
    strike, expected = FAULTS[where]
    with monkeypatch.context() as mp:
        strike(mp)
        try:
            buy(account, alice)
        except (Crash, PaymentPending):
            pass
    # Whatever the request saw, the processor's books and ours are reconciled from what it says.
    payments_reconcile(older_than=RIGHT_AWAY)
    if expected == "complete":
        assert_purchase_complete(account)
    else:
        assert_nothing_taken_nothing_recorded(account)
    assert not PaymentAttempt.objects.filter(status__in=PaymentAttempt.IN_FLIGHT).exists()

    # And a second reconciliation changes nothing.
    before = (processor_money(), list(PaymentAttempt.objects.values_list("pk", "status")),
              Invoice.objects.count())
    payments_reconcile(older_than=RIGHT_AWAY)
    assert (processor_money(), list(PaymentAttempt.objects.values_list("pk", "status")),
            Invoice.objects.count()) == before


def test_a_fault_while_recording_releases_the_authorization_at_once(account, alice, monkeypatch):
    # The settle transaction rolled back: the request itself gives the hold back, without waiting
    # for reconciliation, so the customer's statement never shows it.
    with monkeypatch.context() as mp:
        before_the_real(mp, purchase_flow, "licenses_create", Crash("license insert failed"))
        with pytest.raises(Crash):
            buy(account, alice)
    attempt = PaymentAttempt.objects.get()
    assert attempt.status == PaymentAttempt.CANCELLED
    assert [payment["status"] for payment in SandboxGateway().payments()] == ["cancelled"]
    assert_nothing_taken_nothing_recorded(account)


def test_a_timeout_shows_being_confirmed_and_reconciliation_completes_the_purchase(account, alice, monkeypatch):
    with monkeypatch.context() as mp:
        after_the_real(mp, SandboxGateway, "authorize", ProcessorUnavailable("read timeout"))
        with pytest.raises(PaymentPending) as pending:
            buy(account, alice)
    assert pending.value.attempt.status == PaymentAttempt.UNKNOWN
    # Until it is settled, another purchase waits rather than risk paying twice.
    with pytest.raises(PaymentPending):
        buy(account, alice)
    assert processor_money() == 198000  # held at the processor
    outcomes = payments_reconcile(older_than=RIGHT_AWAY)
    assert outcomes == {PaymentAttempt.SUCCEEDED: 1}
    assert_purchase_complete(account)


def test_reconciliation_leaves_attempts_in_flight_right_now_alone(account, alice, monkeypatch):
    with monkeypatch.context() as mp:
        after_the_real(mp, SandboxGateway, "authorize", ProcessorUnavailable("read timeout"))
        with pytest.raises(PaymentPending):
            buy(account, alice)
    assert payments_reconcile(older_than=datetime.timedelta(minutes=2)) == {}
    assert PaymentAttempt.objects.get().status == PaymentAttempt.UNKNOWN


def test_a_top_up_whose_answer_was_lost_is_completed_by_reconciliation(account, alice, packages, monkeypatch):
    with monkeypatch.context() as mp:
        after_the_real(mp, SandboxGateway, "capture", ProcessorUnavailable("read timeout"))
        top_up, created = tokens_top_up(account=account, package=packages[1], token=uuid.uuid4().hex)
    # The tokens are credited once the card is authorized; the invoice waits for the capture's answer.
    assert created and token_balance(account) == 500
    assert top_up.invoice.status == Invoice.OPEN
    payments_reconcile(older_than=RIGHT_AWAY)
    top_up = TopUp.objects.get()
    assert top_up.invoice.status == Invoice.PAID
    assert processor_money() == 4500
    assert charges().get().amount == D("45.00")


def test_money_taken_for_an_order_that_was_never_recorded_is_refunded(account, alice):
    # Nothing of ours takes money before recording its order; should a processor report a payment
    # taken for an attempt whose order is not recorded (and can no longer be), it is given back.
    with pytest.MonkeyPatch.context() as mp:
        before_the_real(mp, checkout, "_settle", Crash("died before settling"))
        with pytest.raises(Crash):
            buy(account, alice)
    attempt = PaymentAttempt.objects.get()
    SandboxGateway().capture(processor_ref=attempt.processor_ref, idempotency_key="outside:capture")
    license_purchase(account=account, user=alice, token=uuid.uuid4().hex, tier="basic", period="annual",
                     quantity=5)  # the order no longer quotes the same: the bracket moved
    PaymentAttempt.objects.filter(pk=attempt.pk).update(status=PaymentAttempt.UNKNOWN)

    payments_reconcile(older_than=RIGHT_AWAY)

    attempt.refresh_from_db()
    assert attempt.status == PaymentAttempt.REFUNDED
    refund = attempt.refunds.get()
    assert (refund.kind, refund.status, refund.amount) == (PaymentAttempt.REFUND, PaymentAttempt.SUCCEEDED,
                                                           D("1980.00"))
    assert Purchase.objects.filter(account=account).count() == 1  # only the basic one
    assert processor_money() == 220500  # 5 × $490.00 less 10% (5 licenses), nothing of the $1,980.00


def test_the_processor_is_never_called_inside_a_transaction(account, alice):
    from django.db import transaction

    with transaction.atomic():
        attempt = payment_services.attempt_begin(
            account=account, card=payment_services.default_card(account), purpose=PaymentAttempt.PURCHASE,
            kind=PaymentAttempt.AUTHORIZE, amount=D("1.00"), key_base="inside", description="test")
        with pytest.raises(RuntimeError, match="never called inside a database transaction"):
            payment_services.attempt_send(attempt)
    assert processor_money() == 0
