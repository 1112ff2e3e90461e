"""Spending tokens from the device API, with auto top-up (docs/rules.md, Tokens).

A debit that leaves the balance below the threshold queues one top-up, bought by a task once
the debit has committed. A debit the balance cannot cover buys first — outside the balance lock,
through the processor — then tries once more; that second try queues nothing, so one debit
never buys two top-ups.
"""

from django.db import transaction

from accounts.models import Account
from billing.top_up import auto_top_up_buy, auto_top_up_queue
from pictor_billing import clock
from tokens.services import InsufficientTokens, UsageRecorded, auto_top_up_allowed, token_settings, tokens_spend


def usage_record(*, account: Account, output_type: str, quantity: int, event_id: str,
                 idempotency_key: str) -> UsageRecorded:
    """Debit usage once per idempotency key; InsufficientTokens (nothing debited) when even a top-up
    bought first cannot cover it, IdempotencyKeyReused for a key used with another body."""
    usage = {"account": account, "output_type": output_type, "quantity": quantity, "event_id": event_id,
             "idempotency_key": idempotency_key}
    try:
        recorded = tokens_spend(**usage)
    except InsufficientTokens:
        prefs = token_settings(account)
        if not auto_top_up_allowed(account, prefs, clock.now(account)):
            raise
        if auto_top_up_buy(account=account, claim=True) is None:
            raise
        recorded = tokens_spend(**usage, may_queue_top_up=False)
    if recorded.top_up_queued:
        # Only a committed debit queues: if a caller's transaction rolls back, so does the mark.
        transaction.on_commit(lambda: auto_top_up_queue(account))
    return recorded
