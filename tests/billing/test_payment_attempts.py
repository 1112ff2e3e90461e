"""Payment attempts as the owner and support see them: deterministic keys, declines, cards that need
authentication, payments being confirmed, and reconciliation from the command line."""

import datetime
import re
import uuid
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from billing.checkout import PaymentNeedsAction, PaymentPending
from billing.purchase import license_purchase
from billing.usage import usage_record
from invoices.models import Invoice
from licenses.models import License, Purchase
from payments.gateway import ProcessorUnavailable
from payments.models import PaymentAttempt
from payments.sandbox import SandboxGateway
from payments.services import PaymentDeclined, attempt_send, card_make_default
from tests.conftest import DECLINES_CHARGES, NEEDS_AUTHENTICATION, add_card, logged_in
from tests.helpers import ADD_URL, HTMX, books, buy, order_data, post, processor_money, text
from tokens.models import TokenSettings, TopUp
from tokens.services import tokens_grant_signup

D = Decimal


def purchase(account, user, token="form-1", **choices):
    choices = {"tier": "pro", "period": "annual", "quantity": 1, **choices}
    return license_purchase(account=account, user=user, token=token, **choices)


# Keys ------------------------------------------------------------------------------------------------


def test_an_attempt_key_is_the_forms_nth_attempt_so_a_resend_never_charges_twice(prices, alice, alice_card):
    purchase(alice.account, alice, token="nonce-1")
    attempt = PaymentAttempt.objects.get()
    assert attempt.idempotency_key == "purchase:nonce-1:1"
    # Sent again with its key (a retry after a crash), the processor answers with the same payment.
    PaymentAttempt.objects.filter(pk=attempt.pk).update(status=PaymentAttempt.PENDING)
    again = attempt_send(PaymentAttempt.objects.get(pk=attempt.pk))
    assert again.processor_ref == attempt.processor_ref
    assert len(SandboxGateway().payments()) == 1
    assert processor_money() == 99000


def test_after_a_decline_the_same_form_tries_again_with_its_next_key(prices, alice):
    declining = add_card(alice.account, DECLINES_CHARGES)
    with pytest.raises(PaymentDeclined, match="Your card was declined."):
        purchase(alice.account, alice, token="nonce-2")
    card_make_default(account=alice.account, card=add_card(alice.account))
    bought, created = purchase(alice.account, alice, token="nonce-2")
    assert created
    keys = list(PaymentAttempt.objects.order_by("pk").values_list("idempotency_key", "status", "card"))
    assert keys == [("purchase:nonce-2:1", PaymentAttempt.FAILED, declining.pk),
                    ("purchase:nonce-2:2", PaymentAttempt.SUCCEEDED, bought.invoice.payment_attempts.get().card_id)]


def test_a_declined_charge_is_kept_as_a_failed_attempt_with_the_processors_answer(prices, alice):
    add_card(alice.account, DECLINES_CHARGES)
    with pytest.raises(PaymentDeclined):
        purchase(alice.account, alice)
    attempt = PaymentAttempt.objects.get()
    assert attempt.status == PaymentAttempt.FAILED
    assert attempt.failure_reason == "Your card was declined."
    assert attempt.processor_answer["decline_code"] == "card_declined"
    assert attempt.invoice is None and not Invoice.objects.exists()
    assert processor_money() == 0


# Cards that need authentication (4000 0027 6000 3184) -----------------------------------------------


@pytest.fixture
def needs_authentication(prices, alice):
    return add_card(alice.account, NEEDS_AUTHENTICATION)


def test_an_on_session_purchase_asks_the_owner_to_confirm_then_completes(needs_authentication, alice,
                                                                         alice_client):
    response = post(alice_client, ADD_URL, order_data(alice_client, tier="pro", period="annual"), htmx=True)
    attempt = PaymentAttempt.objects.get()
    assert attempt.status == PaymentAttempt.REQUIRES_ACTION
    assert response["HX-Redirect"] == f"/billing/payments/{attempt.pk}/confirm/"
    assert not Purchase.objects.exists() and processor_money() == 0

    # Every tab says so until it is done.
    assert 'data-banner="confirm-payment"' in text(alice_client.get("/billing/invoices/"))
    page = text(alice_client.get(f"/billing/payments/{attempt.pk}/confirm/"))
    assert "Your bank asks you to confirm this payment" in page and "$990.00" in page
    assert "Visa ending 3184" in page

    done = post(alice_client, f"/billing/payments/{attempt.pk}/confirm/", {"action": "approve"}, follow=True)
    assert done.redirect_chain[-1][0] == "/billing/licenses/"
    bought = Purchase.objects.get()
    assert bought.invoice.status == Invoice.PAID
    assert "Purchase complete: 1 Pro license, annual. $990.00 charged to Visa ending 3184." in text(done)
    assert processor_money() == 99000
    assert 'data-banner="confirm-payment"' not in text(alice_client.get("/billing/invoices/"))


def test_failing_authentication_charges_nothing_and_says_so(needs_authentication, alice, alice_client):
    post(alice_client, ADD_URL, order_data(alice_client))
    attempt = PaymentAttempt.objects.get()
    done = post(alice_client, f"/billing/payments/{attempt.pk}/confirm/", {"action": "fail"}, follow=True)
    assert "The payment was not authenticated, so your bank declined it. Nothing was charged." in text(done)
    assert PaymentAttempt.objects.get().status == PaymentAttempt.FAILED
    assert not Purchase.objects.exists() and processor_money() == 0


def test_confirming_twice_pays_once(needs_authentication, alice, alice_client):
    post(alice_client, ADD_URL, order_data(alice_client))
    attempt = PaymentAttempt.objects.get()
    url = f"/billing/payments/{attempt.pk}/confirm/"
    post(alice_client, url, {"action": "approve"})
    again = post(alice_client, url, {"action": "approve"}, follow=True)
    assert "This payment is already confirmed." in text(again)
    assert Purchase.objects.count() == 1 and processor_money() == 9900  # one Pro monthly, once


def test_another_account_cannot_open_or_confirm_the_payment(needs_authentication, alice, alice_client, charlie):
    post(alice_client, ADD_URL, order_data(alice_client))
    attempt = PaymentAttempt.objects.get()
    intruder = logged_in(charlie)
    url = f"/billing/payments/{attempt.pk}/confirm/"
    assert intruder.get(url).status_code == 404
    assert post(intruder, url, {"action": "approve"}).status_code == 404
    assert PaymentAttempt.objects.get().status == PaymentAttempt.REQUIRES_ACTION


def test_a_tampered_confirmation_is_refused(needs_authentication, alice, alice_client):
    post(alice_client, ADD_URL, order_data(alice_client))
    attempt = PaymentAttempt.objects.get()
    assert post(alice_client, f"/billing/payments/{attempt.pk}/confirm/", {"action": "pay-double"}).status_code == 400
    assert PaymentAttempt.objects.get().status == PaymentAttempt.REQUIRES_ACTION


def test_off_session_an_authentication_card_fails_with_authentication_required(needs_authentication, alice,
                                                                               packages):
    tokens_grant_signup(account=alice.account)
    TokenSettings.objects.create(account=alice.account, auto_top_up=True, auto_top_up_threshold=30,
                                 auto_top_up_package=packages[0])
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        usage_record(account=alice.account, output_type="ai_image", quantity=25, event_id="gala",
                     idempotency_key="k1")
    attempt = PaymentAttempt.objects.get()
    assert (attempt.off_session, attempt.status) == (True, PaymentAttempt.FAILED)
    assert "authentication required" in attempt.failure_reason
    prefs = TokenSettings.objects.get(account=alice.account)
    assert prefs.auto_top_up is False and "authentication required" in prefs.auto_top_up_failure
    assert not TopUp.objects.exists() and processor_money() == 0


# A payment being confirmed --------------------------------------------------------------------------


@pytest.fixture
def unconfirmed(prices, alice, alice_card, monkeypatch):
    """A purchase whose processor took the money but whose answer never came back."""
    real = SandboxGateway.authorize

    def lost(self, **call):
        real(self, **call)
        raise ProcessorUnavailable("read timeout")

    with monkeypatch.context() as mp:
        mp.setattr(SandboxGateway, "authorize", lost)
        with pytest.raises(PaymentPending):
            purchase(alice.account, alice, token="lost")
    return PaymentAttempt.objects.get()


def test_while_a_payment_is_unknown_the_owner_sees_it_being_confirmed_and_no_pay_button(unconfirmed, alice_client):
    modal = text(alice_client.get(ADD_URL, headers=HTMX))
    assert "A payment of $990.00 is being confirmed with your bank." in modal
    assert not re.search(r"Pay \$", modal)
    assert 'data-banner="payment-being-confirmed"' in text(alice_client.get("/billing/payment/"))


def test_paying_again_while_a_payment_is_unknown_charges_nothing_more(unconfirmed, alice_client):
    before = books()
    response = buy(alice_client, tier="basic", period="monthly")
    assert response.status_code == 202
    assert "is being confirmed with your bank" in text(response)
    assert books() == before and len(SandboxGateway().payments()) == 1


def test_payments_reconcile_settles_it_and_says_what_it_did(unconfirmed, alice_client):
    out = StringIO()
    call_command("payments_reconcile", "--older-than", "0", stdout=out)
    assert out.getvalue() == "1 attempt succeeded\n"
    assert Purchase.objects.get().invoice.status == Invoice.PAID
    assert License.objects.count() == 1
    assert "being confirmed" not in text(alice_client.get("/billing/payment/"))
    again = StringIO()
    call_command("payments_reconcile", "--older-than", "0", stdout=again)
    assert again.getvalue() == "Nothing to reconcile.\n"


def test_the_reconcile_task_runs_the_same(unconfirmed):
    from billing.tasks import payments_reconcile_task

    result = payments_reconcile_task.enqueue()
    # The immediate backend runs it at once; its default waits RECONCILE_AFTER_SECONDS, so nothing yet.
    assert result.return_value == {}
    assert PaymentAttempt.objects.get().status == PaymentAttempt.UNKNOWN


def test_a_stale_authentication_request_is_released_after_a_day(needs_authentication, alice):
    with pytest.raises(PaymentNeedsAction):
        purchase(alice.account, alice)
    attempt = PaymentAttempt.objects.get()
    PaymentAttempt.objects.filter(pk=attempt.pk).update(
        updated_at=attempt.updated_at - datetime.timedelta(days=2))
    call_command("payments_reconcile", stdout=StringIO())
    assert PaymentAttempt.objects.get().status == PaymentAttempt.CANCELLED
    assert [payment["status"] for payment in SandboxGateway().payments()] == ["cancelled"]


def test_admin_shows_attempts_read_only(admin_client, prices, alice, alice_card):
    purchase(alice.account, alice, token=uuid.uuid4().hex)
    attempt = PaymentAttempt.objects.get()
    body = text(admin_client.get(f"/admin/payments/paymentattempt/{attempt.pk}/change/"))
    assert attempt.idempotency_key in body and attempt.processor_ref in body
    assert 'name="_save"' not in body
    assert admin_client.post(f"/admin/payments/paymentattempt/{attempt.pk}/delete/", {"post": "yes"}).status_code == 403
    assert PaymentAttempt.objects.filter(pk=attempt.pk).exists()
    assert D("990.00") == PaymentAttempt.objects.get().amount


def test_money_taken_for_an_invoice_closed_meanwhile_is_still_recorded(prices, alice, alice_card):
    # A success arriving for an invoice support voided meanwhile must not roll back the record of
    # the money: the attempt says succeeded (support refunds it); the invoice stays void.
    from invoices.services import invoice_status_set
    from payments import gateway as gw
    from payments.gateway import PaymentOutcome
    from payments.services import attempt_record

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("billing.checkout.attempt_capture", lambda attempt: attempt)  # captured later, below
        bought, _ = purchase(alice.account, alice)
    invoice = bought.invoice
    assert invoice.status == Invoice.OPEN
    invoice_status_set(invoice=invoice, to_status=Invoice.VOID, reason="Voided by support")
    attempt = invoice.payment_attempts.get()
    recorded = attempt_record(attempt, PaymentOutcome(gw.SUCCEEDED, attempt.processor_ref, 99000))
    assert recorded.status == PaymentAttempt.SUCCEEDED
    invoice.refresh_from_db()
    assert invoice.status == Invoice.VOID
