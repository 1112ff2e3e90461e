"""Background tasks of the billing flows (Django's task framework, on the database queue that every
`manage.py db_worker` shares). The scheduler (`manage.py billing_scheduler`) enqueues them."""

from django.db import transaction
from django.tasks import task

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
        transaction.on_commit(renewal_charges_task.enqueue)
    return {"renewed": summary.renewed, "retries": summary.retries, "expired": summary.expired}


@task
def renewal_charges_task() -> dict:
    """The charge step: send every pending renewal charge, BILLING_CHARGE_CONCURRENCY at a time."""
    summary = renewal_charges_send()
    return {**summary.outcomes, "charged": str(summary.charged)}


@task
def payments_reconcile_task() -> dict:
    """Settle payment attempts left pending or unknown (a crash, a timeout, a closed browser)."""
    return dict(payments_reconcile())
