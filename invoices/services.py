"""Issuing invoices: numbered gap-free inside the caller's transaction, buyer and seller copied."""

import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from invoices.models import Invoice, InvoiceLine, InvoiceSequence
from pictor_billing.pricing import QuoteLine


def invoice_number_next(*, year: int) -> tuple[int, str]:
    """Take the next number of the year; the row lock holds until the caller's transaction ends.

    A rolled-back transaction gives its number back, so numbers stay gap-free.
    """
    InvoiceSequence.objects.get_or_create(year=year)
    sequence = InvoiceSequence.objects.select_for_update().get(year=year)
    sequence.last_number += 1
    sequence.save(update_fields=["last_number"])
    return sequence.last_number, f"PB-{year}-{sequence.last_number:06d}"


@transaction.atomic
def invoice_issue(
    *,
    account,
    kind: str,
    description: str,
    lines: tuple[QuoteLine, ...] | list[QuoteLine],
    subtotal: Decimal,
    discount_total: Decimal,
    credit_applied: Decimal,
    total: Decimal,
    status: str,
    issued_on: datetime.date,
    charge=None,
) -> Invoice:
    """Issue an invoice with its lines; the stored figures never change afterwards."""
    if sum((line.amount for line in lines), Decimal("0")) != total:
        raise ValueError("invoice lines must sum to its total")
    sequence, number = invoice_number_next(year=issued_on.year)
    seller = settings.SELLER
    invoice = Invoice.objects.create(
        account=account, number=number, year=issued_on.year, sequence=sequence, kind=kind,
        issued_on=issued_on, description=description[:200], status=status,
        subtotal=subtotal, discount_total=discount_total, credit_applied=credit_applied, total=total,
        charge=charge, buyer_name=account.name, buyer_address="\n".join(account.address_lines),
        buyer_vat_id=account.vat_id, seller_name=seller["name"], seller_address=seller["address"],
        seller_email=seller["email"], seller_vat_id=seller["vat_id"],
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(invoice=invoice, position=position, kind=line.kind, description=line.description[:300],
                    quantity=line.quantity, unit_price=line.unit_price, amount=line.amount)
        for position, line in enumerate(lines, start=1)
    )
    return invoice
