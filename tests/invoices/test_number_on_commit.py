"""The invoice number rides on its transaction's COMMIT on PostgreSQL (pictor_billing.postgresql).

Issued by the outermost transaction, an invoice takes its number in the same round trip as the
COMMIT, so the year's sequence row is never locked while this process waits; in a savepoint
(a caller's larger transaction) it is numbered at once, as on SQLite. Either way the number is on
the caller's copy once the block has committed, numbers stay gap-free, and a rolled-back
transaction takes none. Real commits, so PostgreSQL only.
"""

import datetime
from decimal import Decimal as D

import pytest
from django.db import connection, transaction

from invoices.models import Invoice, InvoiceSequence
from invoices.services import issuing_invoice
from pictor_billing.pricing import QuoteLine
from tests.factories import AccountFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

if connection.vendor != "postgresql":
    pytest.skip("real commits on PostgreSQL", allow_module_level=True)


def issuing(account, total="10.00"):
    amount = D(total)
    return issuing_invoice(
        account=account, kind=Invoice.TOP_UP, description="Token top-up: Starter",
        lines=[QuoteLine("item", "Token top-up: Starter", 1, amount, amount)], subtotal=amount,
        discount_total=D("0"), credit_applied=D("0"), total=amount, status=Invoice.PAID,
        issued_on=datetime.date(2026, 12, 2),
    )


def stored_numbers():
    return list(Invoice.objects.order_by("sequence").values_list("number", flat=True))


def test_an_invoice_issued_by_the_outermost_transaction_is_numbered_by_its_commit():
    account = AccountFactory()
    with transaction.atomic():
        with issuing(account) as invoice:
            pass
        assert not invoice.number  # not yet: the number is taken with the COMMIT
        assert connection.commit_riders
    assert invoice.number == "PB-2026-000001" and invoice.sequence == 1
    with transaction.atomic(), issuing(account) as second:
        pass
    assert second.number == "PB-2026-000002"
    assert stored_numbers() == ["PB-2026-000001", "PB-2026-000002"]
    assert InvoiceSequence.objects.get(series="", year=2026).last_number == 2


def test_a_rolled_back_transaction_takes_no_number():
    account = AccountFactory()
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        with issuing(account):
            pass
        1 / 0  # noqa: B018 - whatever fails after the invoice, before the commit
    assert not connection.commit_riders
    with transaction.atomic(), issuing(account) as invoice:
        pass
    assert invoice.number == "PB-2026-000001"
    assert stored_numbers() == ["PB-2026-000001"]


def test_inside_a_savepoint_the_invoice_is_numbered_at_once():
    account = AccountFactory()
    with transaction.atomic():
        with transaction.atomic(), issuing(account) as invoice:
            pass
        assert invoice.number == "PB-2026-000001"  # the caller may go on and use it before committing
        assert not connection.commit_riders
    assert stored_numbers() == ["PB-2026-000001"]
