"""Buying licenses: quote, charge, licenses, coupon redemption, credit and invoice, together."""

import datetime

from django.db import transaction

from accounts.models import Account
from accounts.services import account_lock
from invoices.models import Invoice
from invoices.services import invoice_issue
from licenses.models import CouponRedemption, Purchase
from licenses.services import licenses_create, purchase_quote
from payments.models import CreditEntry
from payments.services import card_charge_default, charge_refund_quietly
from pictor_billing import clock, pricing


def purchase_description(quote: pricing.Quote) -> str:
    plural = "s" if quote.quantity > 1 else ""
    return f"{quote.quantity} {pricing.TIER_LABELS[quote.tier]} license{plural}, {quote.period}"


def license_purchase(
    *, account: Account, user, token: str, tier: str, period: str, quantity: int, coupon_code: str = "",
) -> tuple[Purchase, bool]:
    """Buy licenses: re-quote, charge the default card, create licenses, redeem the coupon, issue the invoice.

    All in one transaction under the account lock. `token` is the form's one-time
    token: the same token again returns the first purchase and `False`
    (nothing more is charged). Raises NoDefaultCard or PaymentDeclined, in
    which case nothing is created.
    """
    charge = None
    try:
        with transaction.atomic():
            account = account_lock(account)
            now = clock.now(account)
            today = now.date()
            done = Purchase.objects.filter(token=token, account=account).first()
            if done is not None:
                return done, False
            quote, coupon = purchase_quote(account=account, tier=tier, period=period, quantity=quantity,
                                           coupon_code=coupon_code, lock=True)
            description = purchase_description(quote)
            charge = card_charge_default(account=account, amount=quote.total_due,
                                         idempotency_key=f"purchase:{token}", description=description)
            invoice = invoice_issue(
                account=account, kind=Invoice.PURCHASE, description=description, lines=quote.lines,
                subtotal=quote.charged_base, discount_total=quote.volume_discount + quote.coupon_discount,
                credit_applied=quote.credit_applied, total=quote.total_due, status=Invoice.PAID,
                issued_on=today, charge=charge,
            )
            purchase = Purchase.objects.create(
                account=account, user=user, token=token, tier=tier, period=period, quantity=quantity,
                coupon=coupon if quote.coupon_applied else None, total_due=quote.total_due, invoice=invoice,
                created_at=now,
            )
            licenses_create(account=account, purchase=purchase, quote=quote, today=today)
            _credit_record(account, quote, invoice, now)
            if quote.coupon_applied:
                CouponRedemption.objects.create(coupon=coupon, account=account, purchase=purchase, created_at=now)
            if period == pricing.MONTHLY and account.monthly_anchor_day is None:
                Account.objects.filter(pk=account.pk).update(monthly_anchor_day=quote.anchor_day)
            return purchase, True
    except Exception:
        charge_refund_quietly(charge)
        raise


def _credit_record(account: Account, quote: pricing.Quote, invoice: Invoice, now: datetime.datetime) -> None:
    entries = []
    if quote.volume_adjustment:
        entries.append(CreditEntry(account=account, kind=CreditEntry.VOLUME_ADJUSTMENT,
                                   amount=quote.volume_adjustment, invoice=invoice,
                                   note=f"{len(quote.adjustments)} active licenses moved to the new bracket",
                                   created_at=now))
    if quote.credit_applied:
        entries.append(CreditEntry(account=account, kind=CreditEntry.APPLIED, amount=-quote.credit_applied,
                                   invoice=invoice, note=f"Applied to {invoice.number}", created_at=now))
    CreditEntry.objects.bulk_create(entries)


