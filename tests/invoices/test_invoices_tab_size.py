"""The Invoices tab of an account with 5,000 invoices (issue 12): paged, in a fixed set of queries."""

from decimal import Decimal

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from invoices.models import Invoice
from invoices.services import issuing_invoices
from pictor_billing import clock
from pictor_billing.pricing import QuoteLine
from tests.conftest import logged_in
from tests.helpers import text


def many_invoices(account, count: int) -> None:
    """`count` paid top-up invoices, issued and numbered the way the billing run issues a batch."""
    amount = Decimal("10.00")
    document = {"account": account, "kind": Invoice.TOP_UP, "description": "Token top-up: Starter",
                "lines": [QuoteLine("item", "Token top-up: Starter", 1, amount, amount)], "subtotal": amount,
                "discount_total": Decimal("0"), "credit_applied": Decimal("0"), "total": amount,
                "status": Invoice.PAID, "issued_on": clock.today(account)}
    with transaction.atomic(), issuing_invoices([document] * count):
        pass


def test_five_thousand_invoices_are_shown_25_a_page_in_the_queries_of_one(alice, django_assert_num_queries):
    client = logged_in(alice)
    many_invoices(alice.account, 1)
    client.get("/billing/invoices/")
    with CaptureQueriesContext(connection) as one:
        client.get("/billing/invoices/")
    many_invoices(alice.account, 4999)

    with django_assert_num_queries(len(one.captured_queries)):
        response = client.get("/billing/invoices/?page=150")

    body = text(response)
    assert body.count('aria-label="Download PDF of invoice ') == 25
    assert "Page 150 of 200" in body
    assert 'aria-label="Invoice pages"' in body
