"""`POST /stripe/webhook/`: Stripe's signed events, stored once by id, acted on from what the processor says.

The events are recorded Stripe events (tests/fixtures/stripe/, the shapes Stripe documents), with
the ids of this test's payments and cards put in, then signed exactly as Stripe signs a delivery:
`Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256(secret, "<t>.<body>")>`. Payments go through the
sandbox processor (PAYMENT_GATEWAY stays "sandbox"), whose books stand in for Stripe's: a webhook
re-fetches the payment from it rather than trusting the event's copy.
"""

import hashlib
import hmac
import json
import logging
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import stripe
from django.test import Client

from billing import checkout
from billing import webhooks as webhook_handlers
from billing.checkout import PaymentNeedsAction
from billing.models import ProcessorEvent
from billing.purchase import license_purchase
from invoices.models import Invoice
from licenses.models import License, Purchase
from payments.gateway import ProcessorUnavailable
from payments.models import Card, PaymentAttempt, ProcessorCustomer
from payments.sandbox import SandboxGateway
from payments.services import attempt_refund
from tests.conftest import NEEDS_AUTHENTICATION, add_card
from tests.helpers import processor_money, text

D = Decimal
URL = "/stripe/webhook/"
SECRET = "whsec_test_8dJ2kQm4Rv7Xp1Ls9Tn3Wc6Yb0Ze5Ha"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe"
CUSTOMER = "cus_QH5zYbW2n4k7Lm"
METHOD = "pm_1PQo5vHkVdPTdYGmQ3rS7tUv"  # the PaymentMethod the recorded card events are about


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET


@pytest.fixture
def stripe_client():
    """Stripe's servers: no session, no CSRF token (the client enforces CSRF as a browser's would)."""
    return Client(enforce_csrf_checks=True)


def recorded(name: str, *, obj: dict | None = None, **event) -> dict:
    """A recorded Stripe event, its data.object and top-level fields replaced where given."""
    body = json.loads((FIXTURES / f"{name}.json").read_text())
    body.update(event)
    body["data"]["object"].update(obj or {})
    return body


def signature(payload: str, *, secret: str = SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe sends with this body."""
    t = int(time.time()) if timestamp is None else timestamp
    v1 = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={v1}"


def deliver(client, event: dict, **signing):
    payload = json.dumps(event)
    return client.post(URL, payload, content_type="application/json", secure=True,
                       headers={"Stripe-Signature": signature(payload, **signing)})


def stored(event: dict) -> ProcessorEvent:
    return ProcessorEvent.objects.get(event_id=event["id"])


# Signatures ------------------------------------------------------------------------------------------


def test_the_signature_is_computed_as_stripes_own_sdk_computes_it():
    payload = json.dumps(recorded("balance.available"))
    assert signature(payload, timestamp=1719900000) == stripe.WebhookSignature.generate_signature_header(
        payload, SECRET, timestamp=1719900000)


@pytest.mark.parametrize("how", ["another secret", "body changed after signing", "no header", "a garbled header",
                                 "signed, but not JSON", "signed JSON, but not an event"])
def test_a_bad_signature_or_body_is_a_400_and_nothing_is_stored(db, stripe_client, how):
    event = recorded("payment_method.updated")
    payload = json.dumps(event)
    header = signature(payload)
    if how == "another secret":
        header = signature(payload, secret="whsec_someone_else")
    elif how == "body changed after signing":
        payload = payload.replace('"exp_year": 2031', '"exp_year": 2040')
    elif how == "no header":
        header = None
    elif how == "a garbled header":
        header = "v1=deadbeef"
    elif how == "signed, but not JSON":
        payload = "evt_1PTa9bHkVdPTdYGmUpd8Card payment_method.updated"
        header = signature(payload)
    elif how == "signed JSON, but not an event":
        payload = json.dumps([event])
        header = signature(payload)
    headers = {"Stripe-Signature": header} if header else {}
    response = stripe_client.post(URL, payload, content_type="application/json", secure=True, headers=headers)
    assert response.status_code == 400
    assert not ProcessorEvent.objects.exists()


def test_without_a_webhook_secret_every_event_is_refused(db, stripe_client, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    payload = json.dumps(recorded("balance.available"))
    response = stripe_client.post(URL, payload, content_type="application/json", secure=True,
                                  headers={"Stripe-Signature": signature(payload, secret="")})
    assert response.status_code == 400
    assert not ProcessorEvent.objects.exists()


def test_a_delivery_signed_more_than_five_minutes_ago_is_refused(db, stripe_client):
    event = recorded("balance.available")
    assert deliver(stripe_client, event, timestamp=int(time.time()) - 301).status_code == 400
    assert not ProcessorEvent.objects.exists()
    assert deliver(stripe_client, event, timestamp=int(time.time()) - 240).status_code == 200


def test_only_post_is_allowed(db, stripe_client):
    assert stripe_client.get(URL, secure=True).status_code == 405
    assert stripe_client.put(URL, "{}", content_type="application/json", secure=True).status_code == 405
    assert not ProcessorEvent.objects.exists()


# Stored once ---------------------------------------------------------------------------------------------


def test_an_unknown_type_is_a_200_stored_and_logged(db, stripe_client, caplog):
    event = recorded("balance.available")
    with caplog.at_level(logging.INFO, logger="billing.webhooks"):
        response = deliver(stripe_client, event)
    assert response.status_code == 200
    row = stored(event)
    assert (row.type, row.outcome) == ("balance.available", "ignored: not a type Pictor handles")
    assert row.handled_at is not None and row.payload == event
    assert "unhandled type balance.available" in caplog.text


def stripe_card(account, method=METHOD, *, customer=CUSTOMER, default=False, **fields):
    """A card saved through Stripe (its gateway_ref "cus_…/pm_…"), as payments/stripe.py stores it."""
    fields = {"brand": "Visa", "last4": "4242", "exp_month": 12, "exp_year": 2099, **fields}
    return Card.objects.create(account=account, gateway="stripe", gateway_ref=f"{customer}/{method}",
                               is_default=default, **fields)


def test_a_replay_is_a_200_and_changes_nothing(alice, stripe_client):
    card = stripe_card(alice.account, default=True)
    event = recorded("payment_method.updated")
    first = deliver(stripe_client, event)
    assert first.status_code == 200
    card.refresh_from_db()
    assert (card.exp_month, card.exp_year) == (3, 2031)
    # Changed here since (the owner added the same card again, say): the replay must not undo it.
    Card.objects.filter(pk=card.pk).update(exp_month=5, exp_year=2033)
    again = deliver(stripe_client, event)
    assert again.status_code == 200 and again.json() == first.json()
    card.refresh_from_db()
    assert (card.exp_month, card.exp_year) == (5, 2033)
    assert ProcessorEvent.objects.count() == 1


def test_an_event_whose_handling_failed_is_a_500_and_handled_when_stripe_delivers_it_again(alice, stripe_client,
                                                                                          monkeypatch):
    card = stripe_card(alice.account, default=True)
    event = recorded("payment_method.updated")

    def broken(stored_event):
        Card.objects.filter(pk=card.pk).update(exp_year=2000)  # rolled back with the failure
        raise RuntimeError("database went away")

    with monkeypatch.context() as mp:
        mp.setitem(webhook_handlers.LOCAL_HANDLERS, "payment_method.updated", broken)
        assert deliver(stripe_client, event).status_code == 500
    row = stored(event)
    assert row.handled_at is None and row.outcome == "error: RuntimeError: database went away"
    card.refresh_from_db()
    assert card.exp_year == 2099
    assert deliver(stripe_client, event).status_code == 200
    card.refresh_from_db()
    assert (card.exp_month, card.exp_year) == (3, 2031)
    assert stored(event).handled_at is not None


# Payments --------------------------------------------------------------------------------------------------


def purchase(account, user, token=None):
    """One Pro annual license: $990.00."""
    return license_purchase(account=account, user=user, token=token or uuid.uuid4().hex, tier="pro",
                            period="annual", quantity=1)


class Crash(Exception):
    """The process dying between two steps."""


@pytest.fixture
def capture_never_sent(prices, alice, alice_card, monkeypatch):
    """A purchase recorded and authorized whose capture never happened (the process died first)."""
    with monkeypatch.context() as mp:
        mp.setattr(checkout, "attempt_capture", lambda attempt: (_ for _ in ()).throw(Crash("died")))
        with pytest.raises(Crash):
            purchase(alice.account, alice)
    attempt = PaymentAttempt.objects.get()
    assert (attempt.status, attempt.order_recorded_at is not None) == (PaymentAttempt.AUTHORIZED, True)
    assert Purchase.objects.get().invoice.status == Invoice.OPEN
    return attempt


@pytest.fixture
def capture_answer_lost(prices, alice, alice_card, monkeypatch):
    """A purchase the processor captured, whose answer never reached us: ours says authorized."""
    real = SandboxGateway.capture

    def struck(self, **call):
        real(self, **call)
        raise Crash("died after capture")

    with monkeypatch.context() as mp:
        mp.setattr(SandboxGateway, "capture", struck)
        with pytest.raises(Crash):
            purchase(alice.account, alice)
    attempt = PaymentAttempt.objects.get()
    assert attempt.status == PaymentAttempt.AUTHORIZED
    assert [payment["status"] for payment in SandboxGateway().payments()] == ["succeeded"]
    return attempt


def intent_event(name: str, attempt: PaymentAttempt, *, event_id: str | None = None, **event) -> dict:
    """A recorded payment_intent.* event about this attempt's payment (as Stripe would send it)."""
    return recorded(name, obj={"id": attempt.processor_ref, "amount": int(attempt.amount * 100),
                               "metadata": {"attempt_id": str(attempt.pk), "description": attempt.description}},
                    **({"id": event_id} if event_id else {}), **event)


def assert_purchase_paid_once(attempt):
    attempt.refresh_from_db()
    assert attempt.status == PaymentAttempt.SUCCEEDED
    bought = Purchase.objects.get()
    assert bought.invoice.status == Invoice.PAID and License.objects.count() == 1
    assert processor_money() == 99000
    assert [payment["status"] for payment in SandboxGateway().payments()] == ["succeeded"]


def test_succeeded_for_a_purchase_left_authorized_completes_it_as_reconciliation_would(capture_never_sent,
                                                                                       stripe_client):
    response = deliver(stripe_client, intent_event("payment_intent.succeeded", capture_never_sent))
    assert response.status_code == 200
    assert_purchase_paid_once(capture_never_sent)
    row = ProcessorEvent.objects.get()
    assert row.outcome == f"attempt {capture_never_sent.pk}: succeeded"
    assert (row.account_id, row.invoice_id) == (capture_never_sent.account_id, capture_never_sent.invoice_id)


def test_succeeded_whose_capture_answer_was_lost_records_it_without_capturing_again(capture_answer_lost,
                                                                                    stripe_client):
    assert deliver(stripe_client, intent_event("payment_intent.succeeded", capture_answer_lost)).status_code == 200
    assert_purchase_paid_once(capture_answer_lost)


def test_without_the_attempt_id_in_metadata_the_attempt_is_found_by_the_payments_id(capture_answer_lost,
                                                                                   stripe_client):
    event = recorded("payment_intent.succeeded", obj={"id": capture_answer_lost.processor_ref, "metadata": {}})
    assert deliver(stripe_client, event).status_code == 200
    assert_purchase_paid_once(capture_answer_lost)


def test_an_intent_that_is_not_ours_changes_nothing(capture_never_sent, stripe_client):
    # Another environment on the same Stripe account: its attempt 1 is not ours.
    event = recorded("payment_intent.succeeded", obj={"id": "pi_3Elsewhere000000000000000",
                                                      "metadata": {"attempt_id": str(capture_never_sent.pk)}})
    assert deliver(stripe_client, event).status_code == 200
    assert ProcessorEvent.objects.get().outcome == "no attempt of ours for pi_3Elsewhere000000000000000"
    capture_never_sent.refresh_from_db()
    assert capture_never_sent.status == PaymentAttempt.AUTHORIZED


@pytest.mark.parametrize("order", [("payment_intent.payment_failed", "payment_intent.succeeded"),
                                   ("payment_intent.succeeded", "payment_intent.payment_failed")])
def test_out_of_order_events_leave_the_attempt_as_the_processor_has_it(capture_answer_lost, stripe_client, order):
    # The failed event (an earlier try of the same intent, Stripe retries its delivery) may arrive
    # before or after the success: either way the processor says succeeded, and so do we.
    for name in order:
        assert deliver(stripe_client, intent_event(name, capture_answer_lost)).status_code == 200
        assert_purchase_paid_once(capture_answer_lost)
    assert ProcessorEvent.objects.count() == 2


def test_a_failed_event_for_a_payment_the_processor_holds_captures_it_rather_than_failing_it(capture_never_sent,
                                                                                            stripe_client):
    deliver(stripe_client, intent_event("payment_intent.payment_failed", capture_never_sent))
    assert_purchase_paid_once(capture_never_sent)


def test_two_events_for_one_payment_capture_it_once(capture_never_sent, stripe_client):
    deliver(stripe_client, intent_event("payment_intent.succeeded", capture_never_sent))
    deliver(stripe_client, intent_event("payment_intent.succeeded", capture_never_sent, event_id="evt_3Other"))
    assert_purchase_paid_once(capture_never_sent)
    assert list(ProcessorEvent.objects.order_by("pk").values_list("outcome", flat=True)) == [
        f"attempt {capture_never_sent.pk}: succeeded",
        f"attempt {capture_never_sent.pk} is succeeded already; nothing to do"]


def test_a_late_requires_action_after_the_owner_authenticated_completes_the_purchase(prices, alice, stripe_client):
    add_card(alice.account, NEEDS_AUTHENTICATION)
    with pytest.raises(PaymentNeedsAction):
        purchase(alice.account, alice)
    attempt = PaymentAttempt.objects.get()
    # The owner passed 3-D Secure, then closed the tab before Pictor heard of it.
    SandboxGateway().authenticate(processor_ref=attempt.processor_ref, approve=True)
    assert deliver(stripe_client, intent_event("payment_intent.requires_action", attempt)).status_code == 200
    assert_purchase_paid_once(attempt)


def test_requires_action_still_waiting_changes_nothing(prices, alice, stripe_client):
    add_card(alice.account, NEEDS_AUTHENTICATION)
    with pytest.raises(PaymentNeedsAction):
        purchase(alice.account, alice)
    attempt = PaymentAttempt.objects.get()
    assert deliver(stripe_client, intent_event("payment_intent.requires_action", attempt)).status_code == 200
    attempt.refresh_from_db()
    assert attempt.status == PaymentAttempt.REQUIRES_ACTION
    assert not Purchase.objects.exists()


# Refunds --------------------------------------------------------------------------------------------------


@pytest.fixture
def paid(prices, alice, alice_card):
    purchase(alice.account, alice)
    return PaymentAttempt.objects.get()


def refund_event(original, refunded_cents):
    return recorded("charge.refunded", obj={"payment_intent": original.processor_ref, "amount": 99000,
                                            "amount_refunded": refunded_cents,
                                            "refunded": refunded_cents == 99000})


def test_charge_refunded_settles_a_refund_whose_answer_was_lost(paid, stripe_client, monkeypatch):
    real = SandboxGateway.refund

    def lost(self, **call):
        real(self, **call)
        raise ProcessorUnavailable("read timeout")

    with monkeypatch.context() as mp:
        mp.setattr(SandboxGateway, "refund", lost)
        refund = attempt_refund(attempt=paid, amount=D("990.00"), reason="Goodwill")
    assert refund.status == PaymentAttempt.UNKNOWN
    assert deliver(stripe_client, refund_event(paid, 99000)).status_code == 200
    refund.refresh_from_db()
    paid.refresh_from_db()
    assert (refund.status, paid.status) == (PaymentAttempt.SUCCEEDED, PaymentAttempt.REFUNDED)
    assert processor_money() == 0
    assert ProcessorEvent.objects.get().outcome == f"attempt {paid.pk}: 1 refund(s) settled; refunded $990.00"


def test_an_event_about_an_earlier_refund_does_not_settle_a_later_one_still_on_its_way(paid, stripe_client,
                                                                                      monkeypatch):
    first = attempt_refund(attempt=paid, amount=D("100.00"), reason="Late start")
    assert first.status == PaymentAttempt.SUCCEEDED
    with monkeypatch.context() as mp:
        mp.setattr(SandboxGateway, "refund", lambda self, **call: (_ for _ in ()).throw(Crash("died")))
        with pytest.raises(Crash):
            attempt_refund(attempt=paid, amount=D("200.00"), reason="More goodwill")
    second = PaymentAttempt.objects.get(kind=PaymentAttempt.REFUND, amount=D("200.00"))
    assert second.status == PaymentAttempt.PENDING
    assert deliver(stripe_client, refund_event(paid, 10000)).status_code == 200
    second.refresh_from_db()
    paid.refresh_from_db()
    assert (second.status, paid.status) == (PaymentAttempt.PENDING, PaymentAttempt.SUCCEEDED)


def test_a_refund_made_in_stripes_dashboard_is_said_so(paid, stripe_client):
    # Refunded at the processor without Pictor (a dashboard refund): nothing of ours to settle; said.
    SandboxGateway().refund(processor_ref=paid.processor_ref, amount_cents=5000, idempotency_key="dashboard",
                            attempt_id=0)
    deliver(stripe_client, refund_event(paid, 5000))
    assert ProcessorEvent.objects.get().outcome == (f"attempt {paid.pk}: 0 refund(s) settled; refunded $50.00, "
                                                   "of which $50.00 not through Pictor")


# Disputes -------------------------------------------------------------------------------------------------


def test_a_dispute_flags_the_invoice_for_support_and_emails_support(paid, stripe_client, admin_client, settings,
                                                                    mailoutbox, django_capture_on_commit_callbacks):
    settings.SELLER = {**settings.SELLER, "email": "support@pictor.example"}
    event = recorded("charge.dispute.created", obj={"payment_intent": paid.processor_ref})
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(stripe_client, event).status_code == 200
    row = stored(event)
    invoice = paid.invoice
    assert row.needs_support and (row.invoice_id, row.account_id) == (invoice.pk, paid.account_id)
    assert row.outcome == f"flagged for support: invoice {invoice.number} of Alice Events (account {paid.account_id})"
    [mail] = mailoutbox
    assert mail.to == ["support@pictor.example"] and mail.from_email == settings.DEFAULT_FROM_EMAIL
    assert mail.subject == f"Dispute opened: {invoice.number}"
    assert "disputed $990.00 (fraudulent)" in mail.body and "dp_1PRz0aHkVdPTdYGmWq3y8ZxC" in mail.body
    assert "by 2024-06-23 23:59 UTC" in mail.body
    # The invoice is untouched (still paid); support finds it under Processor events, Needs support.
    invoice.refresh_from_db()
    assert invoice.status == Invoice.PAID
    listed = text(admin_client.get("/admin/billing/processorevent/?needs_support__exact=1", secure=True))
    assert event["id"] in listed and invoice.number in listed
    assert event["id"] not in text(admin_client.get("/admin/billing/processorevent/?needs_support__exact=0",
                                                    secure=True))
    # A replay flags and emails nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(stripe_client, event).status_code == 200
    assert len(mailoutbox) == 1


def test_a_dispute_of_a_payment_we_do_not_know_is_still_flagged(db, stripe_client, mailoutbox,
                                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        deliver(stripe_client, recorded("charge.dispute.created"))
    row = ProcessorEvent.objects.get()
    assert row.needs_support and row.invoice is None
    assert "matches no invoice of ours" in mailoutbox[0].body


def test_admin_lists_processor_events_read_only(admin_client, db, stripe_client):
    deliver(stripe_client, recorded("balance.available"))
    row = ProcessorEvent.objects.get()
    listing = "/admin/billing/processorevent/"
    assert row.event_id in text(admin_client.get(f"{listing}?handled=yes", secure=True))
    assert row.event_id not in text(admin_client.get(f"{listing}?handled=no", secure=True))
    page = text(admin_client.get(f"{listing}{row.pk}/change/", secure=True))
    assert "balance.available" in page and 'name="_save"' not in page
    assert admin_client.get(f"{listing}add/", secure=True).status_code == 403
    assert admin_client.post(f"{listing}{row.pk}/delete/", {"post": "yes"}, secure=True).status_code == 403


# Cards ----------------------------------------------------------------------------------------------------


def test_payment_method_updated_sets_the_new_expiry(alice, stripe_client):
    card = stripe_card(alice.account, default=True)
    other = stripe_card(alice.account, "pm_1Other0000000000000000")
    assert deliver(stripe_client, recorded("payment_method.updated")).status_code == 200
    card.refresh_from_db()
    other.refresh_from_db()
    assert (card.exp_month, card.exp_year, card.last4) == (3, 2031, "4242")
    assert (other.exp_month, other.exp_year) == (12, 2099)
    assert ProcessorEvent.objects.get().account == alice.account


def test_the_card_updater_sets_the_new_number_and_expiry_and_an_older_update_arriving_later_does_not_undo_it(
        alice, stripe_client):
    card = stripe_card(alice.account, default=True)
    assert deliver(stripe_client, recorded("payment_method.automatically_updated")).status_code == 200
    card.refresh_from_db()
    assert (card.last4, card.exp_month, card.exp_year) == ("1881", 8, 2032)
    # payment_method.updated was created before it (created 1719000000 < 1719600000) but arrives after.
    assert deliver(stripe_client, recorded("payment_method.updated")).status_code == 200
    card.refresh_from_db()
    assert (card.last4, card.exp_month, card.exp_year) == ("1881", 8, 2032)
    assert stored(recorded("payment_method.updated")).outcome == "older than an update already applied; nothing to do"


def test_payment_method_detached_removes_the_card_and_the_newest_other_becomes_the_default(alice, stripe_client):
    card = stripe_card(alice.account, default=True)
    stripe_card(alice.account, "pm_1Older00000000000000000")
    newest = stripe_card(alice.account, "pm_1Newer00000000000000000")
    assert deliver(stripe_client, recorded("payment_method.detached")).status_code == 200
    card = Card.all_objects.get(pk=card.pk)
    assert card.removed_at is not None and not card.is_default
    assert list(Card.objects.filter(account=alice.account, is_default=True)) == [newest]
    # Removed already (by the owner in Pictor, which detached it at Stripe): nothing more to do.
    again = recorded("payment_method.detached", id="evt_1PVc1dHkVdPTdYGmDetach02")
    assert deliver(stripe_client, again).status_code == 200
    assert stored(again).outcome == f"no saved card for {METHOD} (removed already)"


def test_customer_deleted_removes_that_customers_cards_only(alice, charlie, stripe_client):
    first = stripe_card(alice.account, default=True)
    second = stripe_card(alice.account, "pm_1Second0000000000000000")
    kept = stripe_card(charlie.account, "pm_1Charlie000000000000000", customer="cus_Charlie0000000", default=True)
    ProcessorCustomer.objects.create(account=alice.account, gateway="stripe", customer_ref=CUSTOMER)
    assert deliver(stripe_client, recorded("customer.deleted")).status_code == 200
    assert not Card.objects.filter(account=alice.account).exists()
    assert {card.pk for card in Card.all_objects.filter(removed_at__isnull=False)} == {first.pk, second.pk}
    kept.refresh_from_db()
    assert kept.is_default and kept.removed_at is None
    # The next card Alice adds makes a new Stripe customer.
    assert not ProcessorCustomer.objects.filter(account=alice.account).exists()


def test_the_recorded_fixtures_are_stripe_events():
    for path in FIXTURES.glob("*.json"):
        event = json.loads(path.read_text())
        assert event["object"] == "event" and event["id"].startswith("evt_") and path.stem == event["type"]
        assert isinstance(event["created"], int) and event["livemode"] is False
        assert isinstance(event["data"]["object"], dict)
