"""Django admin, billing side: the account page shows credit, past due and the next renewal; staff attach,
advance and detach a test clock there; renewals, renewal groups and a license's paid terms are read-only."""

import datetime
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Account, User
from billing.models import Renewal
from invoices.models import Invoice
from licenses.models import License
from payments.models import CreditEntry
from tests.conftest import add_card
from tests.helpers import buy_directly, text

UTC = datetime.UTC


@pytest.fixture
def admin_client(db):
    superuser = User.objects.create_superuser(email="root@pictor.example", password="x-Admin-secret-1")
    client = Client()
    client.force_login(superuser)
    return client


def clock_url(account):
    return reverse("admin:accounts_account_test_clock", args=[account.pk])


def test_the_account_page_shows_credit_and_the_next_renewal(admin_client, prices, alice):
    add_card(alice.account)
    buy_directly(alice.account, alice, quantity=2, now=datetime.datetime(2027, 3, 10, 9, tzinfo=UTC))
    CreditEntry.objects.create(account=alice.account, kind=CreditEntry.ADMIN_CREDIT, amount=Decimal("12.50"),
                               note="Goodwill", created_at=datetime.datetime(2027, 3, 11, tzinfo=UTC))
    body = text(admin_client.get(reverse("admin:accounts_account_change", args=[alice.account.pk])))
    assert "Credit balance: $12.50" in body
    # 2 Pro monthly at $99, no bracket discount below 3: $198.00, less $12.50 credit = $185.50.
    assert "Next renewal: 2027-04-10: 2 Pro monthly, $185.50" in body
    assert "a test clock needs a fresh account" in body  # it has an invoice: no clock offered
    assert f"account__id__exact={alice.account.pk}" in body


def test_staff_attach_advance_and_detach_a_test_clock(admin_client, prices, alice, mailoutbox):
    account = alice.account
    response = admin_client.post(clock_url(account), {"action": "attach", "time": "2027-01-31T10:00:00Z"})
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.is_test_account and account.test_clock_attached
    assert account.clock_frozen_at == datetime.datetime(2027, 1, 31, 10, tzinfo=UTC)

    add_card(account)
    buy_directly(account, alice, quantity=1)
    response = admin_client.post(clock_url(account), {"action": "advance", "time": "+31d"}, follow=True)
    body = text(response)
    # Jan 31 + 31 days = Mar 3: the Feb 28 renewal ran on the way ($99.00 for one Pro monthly).
    assert "now stands at 2027-03-03 10:00 UTC: 1 renewed, 1 charges paid" in body
    assert "$99.00 charged" in body
    renewal = Renewal.objects.get(account=account)
    assert renewal.billing_date == datetime.date(2027, 2, 28)
    assert renewal.invoice.number == "PB-TEST-2027-000002"

    response = admin_client.post(clock_url(account), {"action": "detach"}, follow=True)
    assert "frozen at 2027-03-03 10:00 UTC" in text(response)
    account.refresh_from_db()
    assert account.is_test_account and not account.test_clock_attached


@pytest.mark.parametrize(("data", "says"), [
    # A fresh account is offered Attach only: advance and detach are not among its choices.
    ({"action": "advance", "time": "+5d"}, "Select a valid choice"),
    ({"action": "attach", "time": "next tuesday"}, "Not a time"),
    ({"action": "attach", "time": "2027-01-31T10:00:00"}, "with its time zone"),
    ({"action": "attach", "time": ""}, "Give a time"),
    ({"action": "rewind", "time": "2027-01-31"}, "Select a valid choice"),
    ({"action": "detach"}, "Select a valid choice"),
])
def test_a_bad_test_clock_request_changes_nothing(admin_client, alice, data, says):
    response = admin_client.post(clock_url(alice.account), data)
    assert response.status_code == 400
    assert says in text(response)
    account = Account.objects.get(pk=alice.account.pk)
    assert (account.is_test_account, account.test_clock_attached, account.clock_frozen_at) == (False, False, None)


def test_a_test_clock_only_moves_forward_and_only_on_a_fresh_account(admin_client, prices, alice, charlie):
    admin_client.post(clock_url(alice.account), {"action": "attach", "time": "2027-01-31T10:00:00Z"})
    response = admin_client.post(clock_url(alice.account), {"action": "advance", "time": "2027-01-30T10:00:00Z"})
    assert response.status_code == 400
    assert "only moves forward" in text(response)

    add_card(charlie.account)
    buy_directly(charlie.account, charlie)
    response = admin_client.post(clock_url(charlie.account), {"action": "attach", "time": "2027-01-31T10:00:00Z"})
    assert response.status_code == 400
    assert "has invoices or payments already" in text(response)
    assert not Account.objects.get(pk=charlie.account.pk).is_test_account


def test_staff_without_change_permission_cannot_touch_a_test_clock(alice):
    staff = User.objects.create_user(email="viewer@pictor.example", password="x-Viewer-secret-1", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.post(clock_url(alice.account), {"action": "attach", "time": "2027-01-31"}).status_code == 403
    assert not Account.objects.get(pk=alice.account.pk).is_test_account


def test_renewals_groups_and_terms_are_read_only_in_admin(admin_client, prices, alice):
    account = alice.account
    admin_client.post(clock_url(account), {"action": "attach", "time": "2027-01-31T10:00:00Z"})
    add_card(account)
    purchase = buy_directly(account, alice, quantity=1)
    admin_client.post(clock_url(account), {"action": "advance", "time": "2027-03-01T10:00:00Z"})
    renewal = Renewal.objects.get(account=account)
    body = text(admin_client.get(reverse("admin:billing_renewal_changelist")))
    assert renewal.invoice.number in body
    assert admin_client.post(reverse("admin:billing_renewal_change", args=[renewal.pk]),
                             {"status": "failed"}).status_code == 403
    assert Renewal.objects.get(pk=renewal.pk).status == Renewal.PAID
    assert admin_client.get(reverse("admin:licenses_renewalgroup_changelist")).status_code == 200

    license_ = purchase.licenses.get()
    body = text(admin_client.get(reverse("admin:licenses_license_change", args=[license_.pk])))
    # Two paid terms: the purchase (Jan 31 - Feb 28) and the renewal (Feb 28 - Mar 31), $99.00 each.
    assert body.count("99.00") >= 2
    assert "Feb. 28, 2027" in body and "March 31, 2027" in body
    assert License.objects.get(pk=license_.pk).terms.count() == 2
    assert Invoice.objects.filter(account=account).count() == 2
