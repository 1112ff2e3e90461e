"""Background tasks of the billing flows (Django's task framework, on the database queue that every
`manage.py db_worker` shares). The scheduler (`manage.py billing_scheduler`) enqueues them."""

from itertools import groupby

from django.tasks import TaskResultStatus, task
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from accounts.models import Account
from billing.notices import accounts_notices_send
from billing.reconcile import payments_reconcile
from billing.renewals import RunSummary, accounts_renew, renewal_charges_send
from pictor_billing import clock


@task
def renew_accounts_task(account_ids: list[int]) -> dict:
    """A batch of accounts' run: their missed billing dates oldest first and their retries (a transaction
    per group of accounts and date), each group's charges sent by the charge step's thread pool while
    the next group is prepared (`accounts_renew`), then their notices.

    Idempotent (one renewal per account and date), so the scheduler may enqueue a batch again and two
    workers may run overlapping batches at once. A charge left unsent (a worker killed mid-batch) is
    claimed again by the charge step the scheduler enqueues.
    """
    accounts = list(Account.objects.filter(pk__in=account_ids).order_by("pk"))
    real = [account for account in accounts if not account.is_test_account]
    summary = RunSummary()
    # Each account's own today (one clock); real accounts share it, so this is one group.
    for today, group in groupby(sorted(real, key=clock.today), key=clock.today):
        group = list(group)
        summary.add(accounts_renew(group, today))
        accounts_notices_send(group, today)
    return {"accounts": summary.accounts, "skipped": len(accounts) - len(real), "renewed": summary.renewed,
            "retries": summary.retries, "expired": summary.expired, **summary.outcomes,
            "charged": str(summary.charged)}


@task
def renew_account_task(account_id: int) -> dict:
    """One account's database work (`renew_accounts_task` for one; tasks enqueued one per account)."""
    return renew_accounts_task.call([account_id])


# Before waiting renewal tasks: the charges it finds (retries, ones a dead worker left) wait for no batch.
@task(priority=10)
def renewal_charges_task() -> dict:
    """The charge step: send every pending renewal charge, BILLING_CHARGE_CONCURRENCY at a time."""
    summary = renewal_charges_send()
    return {**summary.outcomes, "charged": str(summary.charged)}


def charge_step_enqueue() -> None:
    """Enqueue the charge step, unless one is already waiting on the queue: a waiting step sends every
    pending charge when it runs, ours included. (One that is running may have looked already, so only a
    waiting one counts.)"""
    if isinstance(renewal_charges_task.get_backend(), DatabaseBackend) and DBTaskResult.objects.filter(
            status=TaskResultStatus.READY, task_path=renewal_charges_task.module_path).exists():
        return
    renewal_charges_task.enqueue()


@task
def payments_reconcile_task() -> dict:
    """Settle payment attempts left pending or unknown (a crash, a timeout, a closed browser)."""
    return dict(payments_reconcile())
