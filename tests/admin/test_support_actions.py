"""Support actions in Django admin, on a test clock: cancel now with a pro-rata credit, a free-form credit,
a refund to the card (full or part), a void. Each asks for a reason, records the admin, issues a credit
note, and never credits an invoice past its total nor refunds past what its card paid.

The clock starts on Mar 1, 2027 (March has 31 days); Pro monthly is $99.00.
"""

import datetime
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from billing.clocks import clock_advance, clock_attach
from billing.models import Renewal
from invoices.models import Invoice, InvoiceStatusChange
from licenses.models import EventLease, License
from licenses.services import event_start
from payments.models import CreditEntry, PaymentAttempt
from payments.services import card_make_default, credit_balance
from tests.conftest import DECLINES_CHARGES, VISA, add_card
from tests.helpers import buy_directly, processor_money, text

D = Decimal
UTC = datetime.UTC


@pytest.fixture
def support(db):
    admin = User.objects.create_superuser(email="support@pictor.example", password="x-Support-secret-1")
    client = Client()
    client.force_login(admin)
    client.user = admin
    return client


@pytest.fixture
def bought(prices, alice):
    """Alice, on a test clock at Mar 1, 2027, bought 2 Pro monthly ($198.00) with a Visa; now Mar 11."""
    account = clock_attach(account=alice.account, start=datetime.datetime(2027, 3, 1, 9, tzinfo=UTC))
    add_card(account, VISA)
    purchase = buy_directly(account, alice, quantity=2)
    clock_advance(account=account, to=datetime.datetime(2027, 3, 11, 9, tzinfo=UTC))
    account.refresh_from_db()
    return purchase


def act(client, name, obj, data):
    return client.post(reverse(f"admin:{name}", args=[obj.pk]), data)


def notes(invoice):
    return list(Invoice.objects.filter(refers_to=invoice).order_by("pk").values_list("total", flat=True))


def test_cancel_now_credits_the_unused_share_and_a_full_refund_is_then_refused_past_the_total(support, bought):
    account, invoice = bought.account, bought.invoice
    lic = bought.licenses.order_by("pk").first()
    lease, _ = event_start(account=account, event_id="gala", event_tier="pro", device_id="booth")
    page = support.get(reverse("admin:licenses_license_cancel_now", args=[lic.pk]))
    assert page.status_code == 200 and "End the license now" in text(page)
    assert act(support, "licenses_license_cancel_now", lic, {"reason": ""}).status_code == 400

    response = act(support, "licenses_license_cancel_now", lic, {"reason": "Customer closed a venue"})
    assert response.status_code == 302
    lic.refresh_from_db()
    assert (lic.status, lic.ended_on) == (License.EXPIRED, datetime.date(2027, 3, 11))
    assert EventLease.objects.get(pk=lease.pk).stopped_at is not None, "its live event ended with it"
    # min($99.00, $99.00) × 21/31 = $67.064… → $67.06, by a credit note against the purchase, to the balance.
    assert notes(invoice) == [D("-67.06")]
    entry = CreditEntry.objects.get(kind=CreditEntry.ADMIN_CREDIT)
    assert (entry.amount, entry.created_by, "Customer closed a venue" in entry.note) == (D("67.06"), support.user, True)
    assert credit_balance(account) == D("67.06")

    # The invoice ($198.00) can still be credited $130.94: a full refund of $198.00 is refused, nothing moves.
    response = act(support, "invoices_invoice_refund", invoice, {"amount": "198.00", "reason": "Goodwill"})
    assert response.status_code == 400 and "At most $130.94" in text(response)
    assert notes(invoice) == [D("-67.06")] and processor_money() == 19800
    # What is left can be refunded: the card gets $130.94 back, the invoice is credited in full.
    response = act(support, "invoices_invoice_refund", invoice, {"amount": "130.94", "reason": "Goodwill"})
    assert response.status_code == 302
    assert notes(invoice) == [D("-67.06"), D("-130.94")]
    assert processor_money() == 19800 - 13094
    invoice.refresh_from_db()
    assert invoice.status == Invoice.CREDITED
    change = InvoiceStatusChange.objects.filter(invoice=invoice).latest("pk")
    assert (change.to_status, change.changed_by) == (Invoice.CREDITED, support.user)
    assert act(support, "invoices_invoice_refund", invoice, {"amount": "0.01", "reason": "Again"}).status_code == 400


def test_a_part_refund_leaves_the_invoice_paid_and_two_never_exceed_what_the_card_paid(support, bought):
    invoice = bought.invoice
    assert act(support, "invoices_invoice_refund", invoice, {"amount": "50.00", "reason": "Late start"}).status_code \
        == 302
    invoice.refresh_from_db()
    assert invoice.status == Invoice.PAID and notes(invoice) == [D("-50.00")]
    refund = PaymentAttempt.objects.get(kind=PaymentAttempt.REFUND)
    assert (refund.amount, refund.status) == (D("50.00"), PaymentAttempt.SUCCEEDED)
    response = act(support, "invoices_invoice_refund", invoice, {"amount": "148.01", "reason": "More"})
    assert response.status_code == 400 and "At most $148.00" in text(response)
    assert processor_money() == 19800 - 5000


@pytest.mark.parametrize("amount", ["-5", "0", "abc", "1e9", "12.345"])
def test_a_malformed_amount_is_refused_and_nothing_moves(support, bought, amount):
    response = act(support, "invoices_invoice_refund", bought.invoice, {"amount": amount, "reason": "x"})
    assert response.status_code == 400
    assert not PaymentAttempt.objects.filter(kind=PaymentAttempt.REFUND).exists() and notes(bought.invoice) == []


def test_a_free_form_credit_goes_to_the_balance_by_a_credit_note_capped_at_the_invoice(support, bought):
    account, invoice = bought.account, bought.invoice
    url = reverse("admin:accounts_account_credit", args=[account.pk])
    assert "Issue the credit" in text(support.get(url))
    response = support.post(url, {"invoice": invoice.pk, "amount": "25.00", "reason": "Outage on Mar 5"})
    assert response.status_code == 302
    assert credit_balance(account) == D("25.00") and notes(invoice) == [D("-25.00")]
    response = support.post(url, {"invoice": invoice.pk, "amount": "173.01", "reason": "Too much"})
    assert response.status_code == 400 and credit_balance(account) == D("25.00")


def test_a_credit_note_cannot_be_chosen_nor_another_accounts_invoice(support, bought, charlie):
    add_card(charlie.account)
    theirs = buy_directly(charlie.account, charlie).invoice
    url = reverse("admin:accounts_account_credit", args=[bought.account.pk])
    response = support.post(url, {"invoice": theirs.pk, "amount": "5.00", "reason": "x"})
    assert response.status_code == 400 and credit_balance(bought.account) == 0


def test_voiding_a_past_due_renewal_ends_its_licenses_and_returns_nothing_charged(support, bought):
    account = bought.account
    card_make_default(account=account, card=add_card(account, DECLINES_CHARGES))
    clock_advance(account=account, to=datetime.datetime(2027, 4, 1, 12, tzinfo=UTC))
    renewal = Renewal.objects.get(account=account)
    assert renewal.status == Renewal.PAST_DUE
    invoice = renewal.invoice
    response = act(support, "invoices_invoice_void", invoice, {"reason": "Customer left before renewal"})
    assert response.status_code == 302
    invoice.refresh_from_db()
    renewal.refresh_from_db()
    assert (invoice.status, renewal.status) == (Invoice.VOID, Renewal.FAILED)
    assert notes(invoice) == [D("-198.00")]
    assert set(License.objects.filter(account=account).values_list("status", flat=True)) == {License.EXPIRED}
    # Voided, it is never retried.
    clock_advance(account=account, to=datetime.datetime(2027, 4, 8, 12, tzinfo=UTC))
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 1
    assert act(support, "invoices_invoice_void", invoice, {"reason": "again"}).status_code == 400


def test_a_paid_invoice_cannot_be_voided_and_staff_without_rights_cannot_act(support, bought, db):
    assert act(support, "invoices_invoice_void", bought.invoice, {"reason": "x"}).status_code == 400
    viewer = User.objects.create_user(email="viewer@pictor.example", password="x-Viewer-secret-1", is_staff=True)
    client = Client()
    client.force_login(viewer)
    assert act(client, "invoices_invoice_refund", bought.invoice, {"amount": "1.00", "reason": "x"}).status_code \
        == 403
    assert not PaymentAttempt.objects.filter(kind=PaymentAttempt.REFUND).exists()


def test_credit_granted_while_a_renewal_is_past_due_pays_it_first(support, bought):
    account = bought.account
    card_make_default(account=account, card=add_card(account, DECLINES_CHARGES))
    clock_advance(account=account, to=datetime.datetime(2027, 4, 1, 12, tzinfo=UTC))
    renewal = Renewal.objects.get(account=account)
    assert renewal.status == Renewal.PAST_DUE and renewal.invoice.total == D("198.00")
    url = reverse("admin:accounts_account_credit", args=[account.pk])
    # $150 does not cover it: it stays past due, the credit waits on the balance.
    support.post(url, {"invoice": bought.invoice.pk, "amount": "150.00", "reason": "Outage"})
    renewal.refresh_from_db()
    assert renewal.status == Renewal.PAST_DUE and credit_balance(account) == D("150.00")
    # $48 more makes $198: it pays the renewal at once, recorded against its invoice; the licenses are active.
    support.post(url, {"invoice": bought.invoice.pk, "amount": "48.00", "reason": "Outage, rest"})
    renewal.refresh_from_db()
    assert (renewal.status, renewal.invoice.status) == (Renewal.PAID, Invoice.PAID)
    assert CreditEntry.objects.filter(invoice=renewal.invoice, kind=CreditEntry.APPLIED).get().amount == D("-198.00")
    assert credit_balance(account) == 0
    assert set(License.objects.filter(account=account).values_list("status", flat=True)) == {License.ACTIVE}
    # Paid, it is never retried.
    clock_advance(account=account, to=datetime.datetime(2027, 4, 8, 12, tzinfo=UTC))
    assert PaymentAttempt.objects.filter(invoice=renewal.invoice).count() == 1


def test_the_account_page_lists_its_terms_and_attempts(support, bought):
    body = text(support.get(reverse("admin:accounts_account_change", args=[bought.account.pk])))
    number = bought.invoice.number
    assert f"Purchase: pro monthly, 2027-03-01 – 2027-04-01, list $99.00 at 0%, paid $99.00 ({number})" in body
    assert "License purchase, Authorize, then capture $198.00 on Visa ending 4242: Succeeded" in body
    assert "Issue a credit" in body
