"""The scheduler: what to enqueue now. It trusts stored dates, never the task table.

django-tasks-db never reclaims a task a dead worker left running, so every pass (every 10 minutes)
enqueues each account that has something due and no renewal for it yet, in batches (a task per
BILLING_ACCOUNTS_PER_TASK accounts: the queue's own cost per task is paid once a batch); a task
enqueued twice does its work once (one renewal per account and date), so several schedulers on
several machines are safe.
"""

from collections import Counter

from django.conf import settings
from django.db.models import Q

from billing.renewals import CLAIM_TIMEOUT, accounts_due
from billing.tasks import charge_step_enqueue, payments_reconcile_task, renew_accounts_task
from payments.models import PaymentAttempt
from pictor_billing import clock


def schedule_pass() -> Counter:
    """Enqueue the work due now, one renewal task per BILLING_ACCOUNTS_PER_TASK accounts due; a count
    of what was enqueued."""
    enqueued = Counter()
    due = list(accounts_due(clock.today()))
    size = settings.BILLING_ACCOUNTS_PER_TASK
    for start in range(0, len(due), size):
        renew_accounts_task.enqueue(due[start:start + size])
        enqueued["accounts"] += len(due[start:start + size])
        enqueued["renewal tasks"] += 1
    now = clock.now()
    unsent = PaymentAttempt.objects.filter(
        purpose=PaymentAttempt.RENEWAL, kind=PaymentAttempt.CHARGE, status=PaymentAttempt.PENDING,
        off_session=True).filter(Q(sent_at__isnull=True) | Q(sent_at__lt=now - CLAIM_TIMEOUT))
    if unsent.exists():
        charge_step_enqueue()
        enqueued["charge steps"] += 1
    payments_reconcile_task.enqueue()
    enqueued["reconciliations"] += 1
    return enqueued
