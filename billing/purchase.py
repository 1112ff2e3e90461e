"""Buying licenses: authorize the card for the quoted total, record the purchase, then capture.

`license_purchase` begins under the account lock (the quote, the checks, a pending attempt),
authorizes outside any transaction, and settles in a short transaction that quotes again: the
purchase is recorded only if the order is exactly the one authorized (and shown), and the money is
captured only once it is. A declined card creates nothing: no license, no invoice, no number.
"""

import datetime

from django.db import transaction

from accounts.models import Account, User
from accounts.services import account_lock
from billing.checkout import (
    OrderChanged,
    PaymentNeedsAction,
    PaymentPending,
    checkout_run,
    quote_still_holds,
    settle_lock,
    settler,
)
from invoices.models import Invoice
from invoices.services import issuing_invoice
from licenses.models import Coupon, CouponRedemption, Purchase
from licenses.services import licenses_create, purchase_quote
from payments.models import CreditEntry, PaymentAttempt
from payments.services import attempt_begin, attempts_unsettled, chargeable_card
from pictor_billing import clock, pricing
from pictor_billing.form_tokens import quote_digest_matches

# The purchase form's digests are signed with this salt (the Order Summary renders them).
DIGEST_SALT = "billing.purchase.quote"


def purchase_description(quote: pricing.Quote) -> str:
    plural = "s" if quote.quantity > 1 else ""
    return f"{quote.quantity} {pricing.TIER_LABELS[quote.tier]} license{plural}, {quote.period}"


def license_purchase(
    *, account: Account, user: User | None, token: str, tier: str, period: str, quantity: int,
    coupon_code: str = "", shown_digest: str | None = None,
) -> tuple[Purchase, bool]:
    """Buy licenses with the default card; the purchase and whether it is new.

    `token` is the form's one-time nonce: the same token again returns the first purchase and
    False (nothing more is charged). With `shown_digest` (the form's signed digest of the order
    on screen), a quote that differs in anything raises OrderChanged with the new quote, and
    nothing is charged. Raises NoDefaultCard, PaymentDeclined (nothing created), PricingError,
    PaymentNeedsAction (confirm in the browser) or PaymentPending (being confirmed).
    """
    with transaction.atomic():
        account = account_lock(account)
        done = Purchase.objects.filter(token=token, account=account).select_related("invoice").first()
        if done is not None:
            return done, False
        refuse_while_unsettled(account, key_base=f"purchase:{token}")
        quote, coupon = purchase_quote(account=account, tier=tier, period=period, quantity=quantity,
                                       coupon_code=coupon_code, lock=True)
        if shown_digest is not None and not quote_digest_matches(shown_digest, quote, account_id=account.pk,
                                                                 salt=DIGEST_SALT):
            raise OrderChanged(quote=quote)
        card = chargeable_card(account)
        if not quote.total_due:
            # Credit or a coupon covers it all: nothing to authorize, the purchase is recorded now.
            return _record(account, quote, coupon, user_id=user.pk if user else None, token=token), True
        attempt = attempt_begin(
            account=account, card=card, purpose=PaymentAttempt.PURCHASE, kind=PaymentAttempt.AUTHORIZE,
            amount=quote.total_due, key_base=f"purchase:{token}", description=purchase_description(quote),
            order={"tier": tier, "period": period, "quantity": quantity, "coupon_code": coupon_code,
                   "token": token, "user_id": user.pk if user else None,
                   "fingerprint": pricing.quote_fingerprint(quote)},
        )
    return checkout_run(attempt), True


def refuse_while_unsettled(account: Account, *, key_base: str, purpose: str = PaymentAttempt.PURCHASE) -> None:
    """One payment at a time for one form; and none while an earlier one of this purpose is unaccounted for."""
    for attempt in attempts_unsettled(account, (purpose,)):
        if attempt.idempotency_key.startswith(f"{key_base}:"):
            if attempt.status == PaymentAttempt.REQUIRES_ACTION:
                raise PaymentNeedsAction(attempt)
            raise PaymentPending(attempt)
        if attempt.status == PaymentAttempt.UNKNOWN:
            raise PaymentPending(attempt)


@settler(PaymentAttempt.PURCHASE)
def purchase_settle(attempt: PaymentAttempt) -> Purchase:
    """Record the purchase an authorized attempt pays for, if its quote is still the one authorized.

    Idempotent: an attempt whose purchase is recorded returns that purchase. Raises OrderChanged
    (the caller releases the authorization) when a purchase landed in between, a coupon ran out,
    a price or the credit balance changed.
    """
    order = attempt.order
    with transaction.atomic():
        account, attempt = settle_lock(attempt)
        if attempt.order_recorded_at is not None:
            return Purchase.objects.select_related("invoice").get(token=order["token"], account=account)
        quote, coupon = purchase_quote(account=account, tier=order["tier"], period=order["period"],
                                       quantity=order["quantity"], coupon_code=order["coupon_code"], lock=True)
        if not quote_still_holds(quote, attempt):
            raise OrderChanged(quote=quote)
        purchase = _record(account, quote, coupon, user_id=order["user_id"], token=order["token"], attempt=attempt)
        return purchase


def _record(account: Account, quote: pricing.Quote, coupon: Coupon | None, *, user_id: int | None, token: str,
            attempt: PaymentAttempt | None = None) -> Purchase:
    """Write the purchase: invoice, purchase, licenses, credit, coupon redemption, anchor.

    The last writes of the caller's transaction, with the account (and coupon) locked: the
    invoice takes its number as they end, so the year's number is locked only until the commit
    that follows. No processor call happens here.
    """
    now = clock.now(account)
    today = now.date()
    paid = attempt is None  # nothing to charge: paid by credit or coupon
    with issuing_invoice(
        account=account, kind=Invoice.PURCHASE, description=purchase_description(quote), lines=quote.lines,
        subtotal=quote.charged_base, discount_total=quote.volume_discount + quote.coupon_discount,
        credit_applied=quote.credit_applied, total=quote.total_due,
        status=Invoice.PAID if paid else Invoice.OPEN, issued_on=today,
        status_reason="Issued; nothing to charge" if paid else "Issued; the card is authorized",
        attempt_id=attempt.pk if attempt else None,
    ) as invoice:
        purchase = Purchase.objects.create(
            account=account, user_id=user_id, token=token, tier=quote.tier, period=quote.period,
            quantity=quote.quantity, coupon=coupon if quote.coupon_applied else None, total_due=quote.total_due,
            invoice=invoice, created_at=now,
        )
        licenses_create(account=account, purchase=purchase, quote=quote, today=today, invoice=invoice)
        _credit_record(account, quote, invoice, now)
        if quote.coupon_applied:
            CouponRedemption.objects.create(coupon=coupon, account=account, purchase=purchase, created_at=now)
        if quote.period == pricing.MONTHLY and account.monthly_anchor_day is None:
            Account.objects.filter(pk=account.pk).update(monthly_anchor_day=quote.anchor_day)
        if attempt is not None:
            PaymentAttempt.objects.filter(pk=attempt.pk).update(invoice=invoice, order_recorded_at=now)
    return purchase


def _credit_record(account: Account, quote: pricing.Quote, invoice: Invoice, now: datetime.datetime) -> None:
    entries = []
    if quote.volume_adjustment:
        entries.append(CreditEntry(account=account, kind=CreditEntry.VOLUME_ADJUSTMENT,
                                   amount=quote.volume_adjustment, invoice=invoice,
                                   note=f"{len(quote.adjustments)} active licenses moved to the new bracket",
                                   created_at=now))
    if quote.credit_applied:
        entries.append(CreditEntry(account=account, kind=CreditEntry.APPLIED, amount=-quote.credit_applied,
                                   invoice=invoice, note="Applied to this purchase", created_at=now))
    CreditEntry.objects.bulk_create(entries)
