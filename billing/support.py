"""Support actions, for admins: cancel a license now with a pro-rata credit, a free-form credit, a
refund of a paid invoice to its card (full or part), a void of an open invoice.

docs/rules.md, "Support actions". Each takes a reason and the admin, issues a credit note against
the invoice it corrects (the credit notes against one invoice never add up to more than its total),
and moves money only through payment attempts (a refund never exceeds what its card paid).
"""

import logging
from decimal import Decimal

from django.db import transaction

from accounts.models import Account, User
from accounts.services import account_lock
from billing.models import Renewal
from billing.renewals import invoice_cancel, licenses_expire, past_due_pay_from_credit, renewal_end
from invoices.models import Invoice
from invoices.services import CreditNoteRefused, credit_note_issue, credited_so_far, invoice_status_set
from licenses.models import License
from payments.models import CreditEntry, PaymentAttempt
from payments.services import RefundRefused, attempt_refund, refunded_so_far
from pictor_billing import clock, pricing
from pictor_billing.money import ZERO, format_usd, to_money
from pictor_billing.pricing import QuoteLine

log = logging.getLogger(__name__)
REASON_MAX = 200


class SupportRefused(Exception):
    """The action cannot be taken; the message says why, for the admin."""


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise SupportRefused("Say why: the reason is kept with the action.")
    return reason[:REASON_MAX]


def _credit_note(invoice: Invoice, amount: Decimal, description: str, line: str, *, reason: str, user: User,
                 attempt_id: int | None = None) -> Invoice:
    try:
        return credit_note_issue(invoice=invoice, lines=[QuoteLine("credit", line, 1, -amount, -amount)],
                                 description=description, reason=reason, user=user, attempt_id=attempt_id)
    except CreditNoteRefused as refused:
        raise SupportRefused(str(refused)) from refused


def license_cancel_now(*, license: License, admin: User, reason: str) -> tuple[License, Invoice | None]:
    """End a license today; its unused share is credited to the account's balance by a credit note
    against the invoice that paid for its period (capped at what that invoice can still be credited).
    The license and the credit note (None when nothing is credited)."""
    reason = _reason(reason)
    with transaction.atomic():
        account = account_lock(license.account)
        lic = License.objects.select_for_update().get(pk=license.pk, account=account)
        if lic.has_ended:
            raise SupportRefused(f"License #{lic.pk} has already ended.")
        today = clock.today(account)
        term = lic.terms.select_related("invoice").order_by("-starts_on", "-pk").first()
        credit = ZERO
        if term is not None and term.invoice is not None and term.invoice.status == Invoice.PAID:
            credit = pricing.unused_credit(list_price=lic.list_price, rate=lic.discount_rate, paid=term.paid,
                                           period_start=lic.period_start, period_end=lic.period_end, today=today)
            credit = min(credit, term.invoice.total - credited_so_far(term.invoice))
        licenses_expire(account, [lic], paid_until=today)
        note = None
        if credit > 0:
            note = _credit_note(term.invoice, credit, f"Credit note: license #{lic.pk} cancelled",
                                f"Credit for cancelled license #{lic.pk}: {(lic.period_end - today).days} unused days",
                                reason=reason, user=admin)
            CreditEntry.objects.create(account=account, kind=CreditEntry.ADMIN_CREDIT, amount=credit, invoice=note,
                                       note=f"License #{lic.pk} cancelled now: {reason}"[:REASON_MAX],
                                       created_by=admin, created_at=clock.now(account))
            past_due_pay_from_credit(account, user=admin)
        lic.refresh_from_db()
        return lic, note


def account_credit_grant(*, account: Account, invoice: Invoice, amount: Decimal, admin: User,
                         reason: str) -> Invoice:
    """A free-form credit to the account's balance, by a credit note against one of its invoices; the
    credit note. A past-due renewal the balance then covers is paid from it at once."""
    reason = _reason(reason)
    amount = to_money(amount)
    if amount <= 0:
        raise SupportRefused("A credit is more than $0.00.")
    with transaction.atomic():
        account = account_lock(account)
        if invoice.account_id != account.pk or invoice.is_credit_note:
            raise SupportRefused("Choose one of this account's invoices (not a credit note).")
        note = _credit_note(invoice, amount, f"Credit note for {invoice.number}", f"Credit: {reason}"[:REASON_MAX],
                            reason=reason, user=admin)
        CreditEntry.objects.create(account=account, kind=CreditEntry.ADMIN_CREDIT, amount=amount, invoice=note,
                                   note=reason, created_by=admin, created_at=clock.now(account))
        past_due_pay_from_credit(account, user=admin)
        return note


def _card_payment(invoice: Invoice) -> PaymentAttempt | None:
    """The attempt that took this invoice's money from a card."""
    return (PaymentAttempt.objects.filter(invoice=invoice, status__in=[PaymentAttempt.SUCCEEDED,
                                                                       PaymentAttempt.REFUNDED])
            .exclude(kind=PaymentAttempt.REFUND).select_related("card").order_by("-pk").first())


def refundable(invoice: Invoice) -> Decimal:
    """What a refund of this invoice can still give back: neither more than its card paid less what was
    refunded, nor more than the invoice can still be credited."""
    payment = _card_payment(invoice)
    if invoice.status != Invoice.PAID or payment is None:
        return ZERO
    return max(min(payment.amount - refunded_so_far(payment), invoice.total - credited_so_far(invoice)), ZERO)


def invoice_refund(*, invoice: Invoice, amount: Decimal, admin: User, reason: str) -> tuple[PaymentAttempt, Invoice]:
    """Give back `amount` of a paid invoice to the card that paid it (a refund attempt of its own), then
    issue the credit note; fully refunded, the invoice is credited. The refund attempt and the note."""
    reason = _reason(reason)
    amount = to_money(amount)
    payment = _card_payment(invoice)
    if invoice.status != Invoice.PAID or payment is None:
        raise SupportRefused(f"{invoice.number} was not paid by card: there is nothing to refund.")
    left = refundable(invoice)
    if not ZERO < amount <= left:
        raise SupportRefused(f"At most {format_usd(left)} of {invoice.number} can be refunded.")
    try:
        refund = attempt_refund(attempt=payment, amount=amount, reason=f"Refund of {invoice.number}: {reason}"[:200])
    except RefundRefused as refused:
        raise SupportRefused(str(refused)) from refused
    if refund.status != PaymentAttempt.SUCCEEDED:
        raise SupportRefused(f"The processor did not confirm the refund ({refund.get_status_display()}): "
                             "reconciliation will settle it; no credit note was issued.")
    with transaction.atomic():
        account = account_lock(invoice.account)
        note = _credit_note(invoice, amount, f"Credit note: refund of {invoice.number}",
                            f"Refund to {payment.card.label if payment.card else 'the card'}", reason=reason,
                            user=admin, attempt_id=refund.pk)
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if credited_so_far(invoice) == invoice.total:
            invoice_status_set(invoice=invoice, to_status=Invoice.CREDITED, reason=f"Refunded in full: {reason}",
                               attempt_id=refund.pk, user=admin)
        log.info("account %s: %s refunded %s of %s", account.pk, admin, amount, invoice.number)
    return refund, note


def invoice_void(*, invoice: Invoice, admin: User, reason: str) -> Invoice | None:
    """Void an open invoice: it will never be charged. A credit note cancels it, the credit it used
    returns; a renewal's licenses end, paid until its billing date. The credit note (None for $0)."""
    reason = _reason(reason)
    with transaction.atomic():
        account = account_lock(invoice.account)
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status != Invoice.OPEN:
            raise SupportRefused(f"{invoice.number} is {invoice.get_status_display().lower()}: only an open invoice "
                                 "can be voided.")
        if PaymentAttempt.objects.filter(invoice=invoice, status__in=PaymentAttempt.IN_FLIGHT).exists():
            raise SupportRefused(f"A payment of {invoice.number} is under way; void it once it has settled.")
        note = invoice_cancel(account, invoice, to_status=Invoice.VOID, reason=f"Voided: {reason}",
                              note_reason=reason, user=admin)
        renewal = Renewal.objects.filter(invoice=invoice).first()
        if renewal is not None:
            renewal_end(account, renewal)
        return note
