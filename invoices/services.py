"""Issuing invoices and credit notes, and moving their payment status.

Numbers are gap-free per year: a number is taken inside the issuing transaction (a rolled-back
transaction gives it back), and callers issue as the last thing before they commit, so the year's
sequence row stays locked only for an instant. Buyer and seller are copied onto the document,
which never changes again; only its payment status moves, through `invoice_status_set`, which
records every change.
"""

import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum

from invoices.models import ImmutableError, Invoice, InvoiceLine, InvoiceSequence, InvoiceStatusChange
from pictor_billing import clock
from pictor_billing.money import ZERO
from pictor_billing.pricing import QuoteLine

# The moves SPEC allows ("Invoices"): paid when an attempt succeeds, failed after the last dunning
# attempt, void by an admin, credited once fully refunded.
STATUS_MOVES = {
    (Invoice.OPEN, Invoice.PAID),
    (Invoice.OPEN, Invoice.FAILED),
    (Invoice.OPEN, Invoice.VOID),
    (Invoice.PAID, Invoice.CREDITED),
}


class InvoiceStatusRefused(Exception):
    """The invoice cannot move from its status to the one asked for."""


class CreditNoteRefused(Exception):
    """The credit notes against an invoice would add up to more than its total."""


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
    status_reason: str = "Issued",
    refers_to: Invoice | None = None,
    attempt_id: int | None = None,
    user=None,
) -> Invoice:
    """Issue an invoice with its lines; the stored figures never change afterwards.

    The issue is the first entry of its status history. Call it last in the caller's
    transaction: the year's number stays locked from here until the commit.
    """
    if sum((line.amount for line in lines), ZERO) != total:
        raise ValueError("invoice lines must sum to its total")
    sequence, number = invoice_number_next(year=issued_on.year)
    seller = settings.SELLER
    invoice = Invoice.objects.create(
        account=account, number=number, year=issued_on.year, sequence=sequence, kind=kind,
        issued_on=issued_on, description=description[:200], status=status,
        subtotal=subtotal, discount_total=discount_total, credit_applied=credit_applied, total=total,
        refers_to=refers_to, buyer_name=account.name, buyer_address="\n".join(account.address_lines),
        buyer_vat_id=account.vat_id, seller_name=seller["name"], seller_address=seller["address"],
        seller_email=seller["email"], seller_vat_id=seller["vat_id"], created_at=clock.now(account),
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(invoice=invoice, position=position, kind=line.kind, description=line.description[:300],
                    quantity=line.quantity, unit_price=line.unit_price, amount=line.amount)
        for position, line in enumerate(lines, start=1)
    )
    InvoiceStatusChange.objects.create(invoice=invoice, from_status="", to_status=status, reason=status_reason[:200],
                                       attempt_id=attempt_id, changed_by=user, changed_at=clock.now(account))
    return invoice


@transaction.atomic
def invoice_status_set(*, invoice: Invoice, to_status: str, reason: str, attempt_id: int | None = None,
                       user=None) -> Invoice:
    """Move an invoice's payment status, and record the move (from, to, when, why, the attempt).

    Moving to the status it already has is a no-op (a retried settle step must not fail);
    any move SPEC does not allow raises InvoiceStatusRefused.
    """
    current = Invoice.objects.select_for_update().select_related("account").get(pk=invoice.pk)
    if current.status == to_status:
        return current
    if (current.status, to_status) not in STATUS_MOVES:
        raise InvoiceStatusRefused(f"{current.number} is {current.get_status_display().lower()}; "
                                   f"it cannot become {dict(Invoice.STATUS_CHOICES)[to_status].lower()}.")
    if not Invoice.objects.filter(pk=current.pk)._status_move(from_status=current.status, to_status=to_status):
        raise ImmutableError(f"{current.number} changed underneath its row lock")  # cannot happen: locked above
    InvoiceStatusChange.objects.create(invoice=current, from_status=current.status, to_status=to_status,
                                       reason=reason[:200], attempt_id=attempt_id, changed_by=user,
                                       changed_at=clock.now(current.account))
    current.status = to_status
    return current


def credited_so_far(invoice: Invoice) -> Decimal:
    """What the credit notes issued against this invoice add up to, as a positive amount."""
    total = Invoice.objects.filter(refers_to=invoice, kind=Invoice.CREDIT_NOTE).aggregate(s=Sum("total"))["s"]
    return -(total or ZERO)


@transaction.atomic
def credit_note_issue(*, invoice: Invoice, lines: list[QuoteLine], description: str, reason: str,
                      user=None, attempt_id: int | None = None) -> Invoice:
    """Issue a credit note correcting `invoice`: negative lines, numbered in the year it is issued.

    The credit notes against one invoice never add up to more than its total (CreditNoteRefused).
    The invoice row is locked, so two credit notes racing cannot both pass that check.
    """
    invoice = Invoice.objects.select_for_update().select_related("account").get(pk=invoice.pk)
    if invoice.is_credit_note:
        raise CreditNoteRefused("A credit note corrects an invoice, not another credit note.")
    total = sum((line.amount for line in lines), ZERO)
    if total >= 0 or any(line.amount > 0 for line in lines):
        raise CreditNoteRefused("A credit note takes amounts off: its lines must be negative.")
    left = invoice.total - credited_so_far(invoice)
    if -total > left:
        raise CreditNoteRefused(f"{invoice.number} has ${left} left to credit; ${-total} is more than that.")
    account = invoice.account
    return invoice_issue(
        account=account, kind=Invoice.CREDIT_NOTE, description=description, lines=lines,
        subtotal=total, discount_total=ZERO, credit_applied=ZERO, total=total, status=Invoice.CREDITED,
        issued_on=clock.today(account), status_reason=reason, refers_to=invoice, attempt_id=attempt_id, user=user,
    )
