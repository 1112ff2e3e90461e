"""Reconciliation: settle the payment attempts a crash, a timeout or a closed browser left behind.

For each attempt left pending or unknown longer than RECONCILE_AFTER_SECONDS, the processor is
asked how the payment stands (by the id stored on the attempt, or else by the attempt id the
payment carries: Stripe has no look-up by idempotency key, and a key is never re-sent once it may
have expired). Then, through the same steps a request takes (`billing.checkout`):

- never received, or declined: failed, nothing to do; no money moved;
- authorized, order not recorded: record it if its quote still holds, then capture; else release;
- authorized, order recorded: capture;
- taken, order never recorded (cannot happen by our own steps): refunded in full;
- waiting for the cardholder's authentication for more than a day: released.

Queued auto top-ups that no task finished are released too, so the next debit can queue again.
Every step is idempotent: running this twice, or beside the request it races, settles once.
"""

import datetime
import logging
from collections import Counter

from django.conf import settings

from billing.checkout import OrderChanged, PaymentNeedsAction, PaymentPending, checkout_continue
from billing.renewals import renewal_charge_outcome
from billing.top_up import AUTO_TOP_UP_STALE, auto_top_up_release
from payments.models import PaymentAttempt
from payments.services import (
    PaymentDeclined,
    attempt_cancel,
    attempt_refresh,
    attempt_refund,
)
from pictor_billing import clock
from tokens.models import TokenSettings

log = logging.getLogger(__name__)
AUTHENTICATION_WAIT = datetime.timedelta(days=1)


def payments_reconcile(*, older_than: datetime.timedelta | None = None) -> Counter:
    """Settle every attempt left alone longer than `older_than`; a count of what each one became."""
    if older_than is None:
        older_than = datetime.timedelta(seconds=settings.RECONCILE_AFTER_SECONDS)
    # Real time: how long an attempt has been left alone, whatever an account's clock says.
    cutoff = clock.now() - older_than
    outcomes = Counter()
    stale = PaymentAttempt.objects.filter(
        status__in=(PaymentAttempt.PENDING, PaymentAttempt.UNKNOWN, PaymentAttempt.AUTHORIZED),
        updated_at__lte=cutoff).exclude(kind=PaymentAttempt.REFUND).order_by("pk")
    # A renewal charge still waiting for the charge step was never sent: not reconciliation's.
    stale = stale.exclude(kind=PaymentAttempt.CHARGE, status=PaymentAttempt.PENDING, sent_at__isnull=True)
    stale = stale.exclude(kind=PaymentAttempt.CHARGE, status=PaymentAttempt.PENDING, sent_at__gt=cutoff)
    for attempt in stale.iterator():
        outcomes[attempt_reconcile(attempt)] += 1
    waiting = PaymentAttempt.objects.filter(status=PaymentAttempt.REQUIRES_ACTION,
                                            updated_at__lte=clock.now() - AUTHENTICATION_WAIT)
    for attempt in waiting.iterator():
        outcomes[attempt_cancel(attempt).status] += 1
    for refund in PaymentAttempt.objects.filter(kind=PaymentAttempt.REFUND, updated_at__lte=cutoff,
                                                status__in=(PaymentAttempt.PENDING, PaymentAttempt.UNKNOWN)):
        outcomes[f"refund {attempt_refresh(refund).status}"] += 1
    _release_stale_auto_top_ups()
    return outcomes


def attempt_reconcile(attempt: PaymentAttempt) -> str:
    """Settle one attempt from what the processor says; the status it ends in."""
    if attempt.kind == PaymentAttempt.CHARGE:
        return _charge_reconcile(attempt)
    if attempt.status in (PaymentAttempt.PENDING, PaymentAttempt.UNKNOWN):
        attempt = attempt_refresh(attempt)
    if attempt.status in (PaymentAttempt.AUTHORIZED, PaymentAttempt.SUCCEEDED) and attempt.order_recorded_at is None:
        try:
            checkout_continue(attempt)
        except OrderChanged:
            if attempt.status == PaymentAttempt.SUCCEEDED:
                # Taken but the order cannot be recorded: give it all back.
                attempt_refund(attempt=attempt, amount=attempt.amount, reason="Order could not be completed")
        except (PaymentDeclined, PaymentPending, PaymentNeedsAction):
            pass
    elif attempt.status == PaymentAttempt.AUTHORIZED:
        checkout_continue(attempt)  # recorded: capture
    attempt.refresh_from_db()
    if attempt.purpose == PaymentAttempt.AUTO_TOP_UP and not attempt.in_flight:
        auto_top_up_release(attempt.account)
    log.info("reconciled attempt %s: %s", attempt.pk, attempt.status)
    return attempt.status


def _charge_reconcile(attempt: PaymentAttempt) -> str:
    # A renewal charge (one step, its invoice issued first): what the processor says settles the
    # renewal; one it never received goes back to the charge step, to be sent with the same key.
    attempt = attempt_refresh(attempt, resend_if_never_received=True)
    if attempt.status == PaymentAttempt.PENDING:
        return "to be sent again"
    renewal_charge_outcome(attempt)
    return attempt.status


def _release_stale_auto_top_ups() -> None:
    stale = TokenSettings.objects.filter(auto_top_up_pending_since__lte=clock.now() - AUTO_TOP_UP_STALE)
    for prefs in stale.select_related("account"):
        busy = PaymentAttempt.objects.filter(account=prefs.account, purpose=PaymentAttempt.AUTO_TOP_UP,
                                             status__in=PaymentAttempt.IN_FLIGHT).exists()
        if not busy:
            auto_top_up_release(prefs.account)
