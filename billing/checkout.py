"""Paying for an order without holding a lock while the processor works.

Every flow that takes money for something it then records (a license purchase, a token top-up,
an auto top-up) runs the same steps, per docs/rules.md, "Payments to the processor":

1. begin   — the flow's own transaction, account locked: quote, checks, a pending attempt; commit.
2. send    — authorize the card (no transaction open).
3. settle  — the flow's settler, a short transaction under the account lock: quote again, and
             record the order as authorized, or refuse (OrderChanged) when it can no longer be
             honoured — then the authorization is released, so the statement shows nothing.
4. capture — take the money (no transaction open); the invoice moves open → paid.

A crash or timeout between any two steps leaves an attempt that `billing.reconcile` finishes
from what the processor says: the order complete, or no money taken. Settlers are idempotent
(an order already recorded is returned, not recorded twice), so the request and a reconciliation
racing over one attempt end in one order and one capture.
"""

import importlib
import logging
from collections.abc import Callable

from accounts.models import Account
from accounts.services import account_lock_by_id
from invoices.models import Invoice
from payments.models import PaymentAttempt
from payments.services import PaymentDeclined, attempt_cancel, attempt_capture, attempt_send
from pictor_billing import pricing

log = logging.getLogger(__name__)


class OrderChanged(Exception):
    """The order cannot be honoured as shown or authorized (its quote changed): nothing is charged.

    `quote` is the new quote when the flow has one, for the summary shown again.
    """

    def __init__(self, message: str = "The total changed.", *, quote=None):
        super().__init__(message)
        self.quote = quote


class PaymentPending(Exception):
    """An attempt for this order is still being confirmed with the processor; nothing more is charged."""

    def __init__(self, attempt: PaymentAttempt):
        super().__init__(f"attempt {attempt.pk} is {attempt.status}")
        self.attempt = attempt


class PaymentNeedsAction(Exception):
    """The cardholder must confirm this payment in the browser (3-D Secure)."""

    def __init__(self, attempt: PaymentAttempt):
        super().__init__(f"attempt {attempt.pk} requires action")
        self.attempt = attempt


# purpose -> settler(attempt) -> the recorded order; registered by the flows (billing.purchase,
# billing.top_up, billing.changes) when they are imported; `_settle` imports them first, since a task worker
# reconciling a payment may have imported none of them.
SETTLERS: dict[str, Callable[[PaymentAttempt], object]] = {}


def settler(*purposes: str):
    """Register the function that records an authorized attempt's order, for these purposes."""

    def register(function):
        for purpose in purposes:
            SETTLERS[purpose] = function
        return function

    return register


def settle_lock(attempt: PaymentAttempt) -> tuple[Account, PaymentAttempt]:
    """Inside a settler's transaction: the account, then the attempt, locked and read fresh.

    Raises OrderChanged when the attempt's order is not recorded and its money is no longer held
    (released, failed): such an order is never recorded.
    """
    account = account_lock_by_id(attempt.account_id)
    attempt = PaymentAttempt.objects.select_for_update().get(pk=attempt.pk)
    if attempt.order_recorded_at is None and attempt.status not in (PaymentAttempt.AUTHORIZED,
                                                                    PaymentAttempt.SUCCEEDED):
        raise OrderChanged("This payment was cancelled; nothing was charged.")
    return account, attempt


def quote_still_holds(quote, attempt: PaymentAttempt) -> bool:
    """Whether a fresh quote is the very order the attempt was authorized for."""
    return pricing.quote_fingerprint(quote) == attempt.order["fingerprint"] and quote.total_due == attempt.amount


def checkout_run(attempt: PaymentAttempt):
    """Send a pending attempt to the processor, then settle it; the recorded order.

    Raises PaymentDeclined (nothing recorded, nothing taken), OrderChanged (the authorization
    was released), PaymentNeedsAction, or PaymentPending (no answer: reconciliation finishes it).
    """
    return checkout_continue(attempt_send(attempt))


def checkout_continue(attempt: PaymentAttempt):
    """Take an attempt on from wherever it stands (after send, after authentication, in reconciliation)."""
    if attempt.status in (PaymentAttempt.PENDING, PaymentAttempt.UNKNOWN):
        raise PaymentPending(attempt)
    if attempt.status == PaymentAttempt.REQUIRES_ACTION:
        raise PaymentNeedsAction(attempt)
    if attempt.status == PaymentAttempt.FAILED:
        raise PaymentDeclined(attempt.failure_reason or "Your card was declined.")
    if attempt.status == PaymentAttempt.CANCELLED:
        raise OrderChanged("This payment was cancelled; nothing was charged.")
    recorded = _settle(attempt)
    if attempt.status == PaymentAttempt.AUTHORIZED:
        attempt = attempt_capture(attempt)
        if attempt.status == PaymentAttempt.FAILED:
            # The hold was lost before capture (it expired): the order stands, its invoice stays
            # open, and support sees the failed attempt.
            log.error("attempt %s: capture refused after the order was recorded", attempt.pk)
        if attempt.status == PaymentAttempt.SUCCEEDED:
            recorded.invoice.status = Invoice.PAID  # as attempt_record has just recorded it
    return recorded


FLOWS = ("billing.purchase", "billing.top_up", "billing.changes")


def _settle(attempt: PaymentAttempt):
    for flow in FLOWS:
        importlib.import_module(flow)
    settle = SETTLERS[attempt.purpose]
    try:
        return settle(attempt)
    except OrderChanged:
        attempt_cancel(attempt)
        raise
    except Exception:
        # The settle transaction rolled back: nothing is recorded. Release the hold now rather
        # than leave the customer's money held; if even that fails, reconciliation will.
        try:
            attempt_cancel(attempt)
        except Exception:
            log.exception("attempt %s: could not release the authorization; reconciliation will", attempt.pk)
        raise
