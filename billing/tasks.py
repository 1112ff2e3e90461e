"""Background tasks of the billing flows (Django's task framework, on the database queue that every
`manage.py db_worker` shares). The scheduler (`manage.py billing_scheduler`) enqueues them."""

from django.db import transaction
from django.tasks import TaskResultStatus, task
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from accounts.models import Account
from billing.notices import notices_send
from billing.reconcile import payments_reconcile
from billing.renewals import account_prepare, renewal_charges_send
from pictor_billing import clock


@task
def renew_account_task(account_id: int) -> dict:
    """One account's database work: its missed billing dates oldest first, its retries, its notices.

    Idempotent (one renewal per account and date), so the scheduler may enqueue it again and two
    workers may run it at once. The charges go to the charge step.
    """
    account = Account.objects.get(pk=account_id)
    if account.is_test_account:
        return {"skipped": "test account"}
    today = clock.today(account)
    summary = account_prepare(account, today)
    notices_send(account, today)
    if summary.renewed or summary.retries:
        transaction.on_commit(charge_step_enqueue)
    return {"renewed": summary.renewed, "retries": summary.retries, "expired": summary.expired}


@task
def renewal_charges_task() -> dict:
    """The charge step: send every pending renewal charge, BILLING_CHARGE_CONCURRENCY at a time."""
    summary = renewal_charges_send()
    return {**summary.outcomes, "charged": str(summary.charged)}


def charge_step_enqueue() -> None:
    """Enqueue the charge step, unless one is already waiting on the queue: a waiting step sends every
    pending charge when it runs, ours included, so 20,000 renewed accounts need not enqueue 20,000 steps.
    (One that is running may have looked already, so only a waiting one counts.)"""
    if isinstance(renewal_charges_task.get_backend(), DatabaseBackend) and DBTaskResult.objects.filter(
            status=TaskResultStatus.READY, task_path=renewal_charges_task.module_path).exists():
        return
    renewal_charges_task.enqueue()


@task
def payments_reconcile_task() -> dict:
    """Settle payment attempts left pending or unknown (a crash, a timeout, a closed browser)."""
    return dict(payments_reconcile())
