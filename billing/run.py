"""The billing run: everything due on or before a date, account by account, then the charges.

The daily run (the scheduler's tasks, or `manage.py billing_run`) leaves test accounts out; a test
clock's advance runs the very same steps for its one account, day by day, in the calling process.
"""

import datetime

from accounts.models import Account
from billing.notices import notices_send
from billing.renewals import RunSummary, account_prepare, accounts_due, renewal_charges_send


def billing_run(*, upto: datetime.date, concurrency: int | None = None, progress=None) -> RunSummary:
    """Renew what is due on or before `upto` for every real account, then send the charges.

    `progress(done, due)` is called as accounts are done. Safe to run twice, or beside workers.
    """
    due = list(accounts_due(upto))
    summary = RunSummary()
    for done, account in enumerate(Account.objects.filter(pk__in=due).order_by("pk").iterator(), start=1):
        summary.add(account_prepare(account, upto))
        notices_send(account, upto)
        if progress is not None:
            progress(done, len(due))
    summary.add(renewal_charges_send(concurrency=concurrency))
    return summary


def account_day(account: Account, day: datetime.date) -> RunSummary:
    """One account's work for one day, charges included, in this process (a test clock's step)."""
    summary = account_prepare(account, day)
    notices_send(account, day)
    summary.add(renewal_charges_send(concurrency=1, account=account))
    return summary
