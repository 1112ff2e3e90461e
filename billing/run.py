"""The billing run: everything due on or before a date, a batch of accounts at a time, with its charges.

The daily run (the scheduler's tasks, or `manage.py billing_run`) leaves test accounts out; a test
clock's advance runs the very same steps for its one account, day by day, in the calling process.
"""

import datetime

from django.conf import settings

from accounts.models import Account
from billing.notices import accounts_notices_send, notices_send
from billing.renewals import RunSummary, account_prepare, accounts_due, accounts_renew, renewal_charges_send


def billing_run(*, upto: datetime.date, concurrency: int | None = None, progress=None) -> RunSummary:
    """Renew and charge what is due on or before `upto` for every real account, then send any charge
    left pending (one a dead worker claimed, say).

    Accounts go in batches of BILLING_ACCOUNTS_PER_TASK, as the scheduler's tasks take them (the same
    `accounts_renew`); `progress(done, due)` is called after each batch. Safe to run twice, or beside workers.
    """
    due = list(accounts_due(upto))
    summary = RunSummary()
    size = settings.BILLING_ACCOUNTS_PER_TASK
    for start in range(0, len(due), size):
        batch = list(Account.objects.filter(pk__in=due[start:start + size]).order_by("pk"))
        summary.add(accounts_renew(batch, upto, concurrency=concurrency))
        accounts_notices_send(batch, upto)
        if progress is not None:
            progress(min(start + size, len(due)), len(due))
    summary.add(renewal_charges_send(concurrency=concurrency))
    return summary


def account_day(account: Account, day: datetime.date) -> RunSummary:
    """One account's work for one day, charges included, in this process (a test clock's step)."""
    summary = account_prepare(account, day)
    notices_send(account, day)
    summary.add(renewal_charges_send(concurrency=1, account=account))
    return summary
