"""Background tasks of the billing flows (Django's task framework)."""

from django.tasks import task

from billing.reconcile import payments_reconcile


@task
def payments_reconcile_task() -> dict:
    """Settle payment attempts left pending or unknown (the billing run schedules this)."""
    return dict(payments_reconcile())
