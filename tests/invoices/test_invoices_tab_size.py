"""The Invoices tab of an account with 5,000 invoices (issue 12): paged, in a fixed set of queries."""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from invoices.models import Invoice
from invoices.services import issuing_invoices
from payments.models import PaymentAttempt
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


# The session, the user, the page's rows with their count (pictor_billing.paging), and the Billing
# header in one query.
TAB_QUERIES = 4


@pytest.mark.parametrize("count", [26, 5000])
def test_the_tab_costs_a_fixed_number_of_queries_whatever_the_account_s_size(
        alice, django_assert_max_num_queries, count):
    many_invoices(alice.account, count)
    client = logged_in(alice)
    client.get("/billing/invoices/")
    with django_assert_max_num_queries(TAB_QUERIES):
        response = client.get("/billing/invoices/?page=2")
    assert response.status_code == 200
    assert f"Page 2 of {-(-count // 25)}<" in text(response)


def test_a_page_beyond_the_last_shows_the_last_for_the_count_and_its_rows_more(
        alice, django_assert_max_num_queries):
    many_invoices(alice.account, 30)
    client = logged_in(alice)
    client.get("/billing/invoices/")
    with django_assert_max_num_queries(TAB_QUERIES + 2):
        body = text(client.get("/billing/invoices/?page=9"))
    assert "Page 2 of 2<" in body
    assert body.count('aria-label="Download PDF of invoice ') == 5


def test_the_header_loads_a_banner_s_payment_only_when_there_is_one(alice, django_assert_max_num_queries):
    """A payment waiting for the cardholder and one being confirmed: a query each, beyond the header's one."""
    for status, key in [(PaymentAttempt.REQUIRES_ACTION, "confirm"), (PaymentAttempt.UNKNOWN, "unknown")]:
        PaymentAttempt.objects.create(account=alice.account, purpose=PaymentAttempt.PURCHASE,
                                      kind=PaymentAttempt.AUTHORIZE, amount=Decimal("297.00"), status=status,
                                      description="Pro license, monthly", idempotency_key=key, gateway="sandbox")
    client = logged_in(alice)
    with django_assert_max_num_queries(TAB_QUERIES + 2):  # no invoices: the first page finds none
        body = text(client.get("/billing/invoices/"))
    assert 'data-banner="confirm-payment"' in body
    assert 'data-banner="payment-being-confirmed"' in body
