"""Receivables: open invoices by age since issue (0–7, 8–30, 31–90, 90+ days), per account, with their attempts."""

import datetime
from decimal import Decimal as D

import pytest

from finance.receivables import bucket_of, receivables
from invoices.models import Invoice
from tests.finance.helpers import attempt_make, clocked_account_make, invoice_make
from tests.helpers import text

TODAY = datetime.date(2026, 6, 30)


def ago(days):
    return TODAY - datetime.timedelta(days=days)


@pytest.mark.parametrize(("age", "bucket"), [(0, 0), (7, 0), (8, 1), (30, 1), (31, 2), (90, 2), (91, 3), (900, 3)])
def test_the_buckets_edges(age, bucket):
    assert bucket_of(age) == bucket


@pytest.fixture
def book(alice, charlie):
    """Open: alice 99.00 (3 days), 49.00 (30 days, two declined attempts), 149.00 (120 days); charlie 10.00 (31).
    Not receivable: a paid, a failed and a void invoice, and a test account's open one."""
    fresh = invoice_make(alice.account, "99.00", kind=Invoice.RENEWAL, issued_on=ago(3), status=Invoice.OPEN)
    month = invoice_make(alice.account, "49.00", kind=Invoice.RENEWAL, issued_on=ago(30), status=Invoice.OPEN)
    attempt_make(month)
    attempt_make(month, failure_reason="Your card has insufficient funds.")
    old = invoice_make(alice.account, "149.00", kind=Invoice.RENEWAL, issued_on=ago(120), status=Invoice.OPEN)
    charlies = invoice_make(charlie.account, "10.00", kind=Invoice.RENEWAL, issued_on=ago(31), status=Invoice.OPEN)
    invoice_make(alice.account, "500.00", issued_on=ago(10))
    invoice_make(alice.account, "7.00", issued_on=ago(10), status=Invoice.FAILED)
    invoice_make(charlie.account, "8.00", issued_on=ago(10), status=Invoice.VOID)
    invoice_make(clocked_account_make(), "1000.00", issued_on=ago(10), status=Invoice.OPEN)
    return {"fresh": fresh, "month": month, "old": old, "charlie": charlies}


def test_open_invoices_by_age_per_account(book, alice, charlie):
    result = receivables(TODAY)
    assert result.by_bucket == [D("99.00"), D("49.00"), D("10.00"), D("149.00")]
    assert result.counts == [1, 1, 1, 1]
    assert result.total == D("307.00")
    assert [(row.name, row.total) for row in result.accounts] == [("Alice Events", D("297.00")),
                                                                  ("Charlie Photo", D("10.00"))]
    alice_row = result.accounts[0]
    assert [(item.invoice.number, item.age, item.bucket) for item in alice_row.invoices] == [
        (book["old"].number, 120, 3), (book["month"].number, 30, 1), (book["fresh"].number, 3, 0)]
    assert alice_row.by_bucket == [D("99.00"), D("49.00"), D("0.00"), D("149.00")]


def test_the_page_shows_each_open_invoice_with_its_attempts(finance_client, alice):
    today = datetime.date.today()  # the page counts to the real date
    invoice = invoice_make(alice.account, "49.00", kind=Invoice.RENEWAL, status=Invoice.OPEN,
                           issued_on=today - datetime.timedelta(days=12))
    attempt = attempt_make(invoice)
    body = text(finance_client.get("/finance/receivables/"))
    assert f'data-number="{invoice.number}" data-age="12" data-bucket="1"' in body
    assert f'data-attempt="{attempt.pk}"' in body and "Your card was declined." in body
    assert 'data-bucket="1" data-amount="49.00" data-count="1"' in body
