"""Spending tokens from the device API: one debit per idempotency key, with auto top-up."""

import hashlib
import json
import uuid
from dataclasses import dataclass

from django.db import transaction

from accounts.models import Account
from accounts.services import account_lock
from billing.top_up import auto_top_up, auto_top_up_allowed
from payments.services import charge_refund_quietly
from pictor_billing import clock
from tokens.models import TokenEntry, UsageRequest
from tokens.services import InsufficientTokens, ledger_add, low_balance_check, rates_in_force, token_settings


class IdempotencyKeyReused(Exception):
    """The idempotency key was used before with a different body; nothing was debited."""


@dataclass(frozen=True)
class UsageRecorded:
    """The answer to a usage debit: the body the API returns, and whether it is a replay of the first answer."""

    body: dict
    replayed: bool = False


def body_fingerprint(body: dict) -> str:
    """A stable hash of a request body, to tell a true retry from a reused key."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def tokens_spend(
    *, account: Account, output_type: str, quantity: int, event_id: str, idempotency_key: str,
) -> UsageRecorded:
    """Debit rate × quantity tokens for usage, once per idempotency key.

    The same key and body again returns the first answer and debits nothing;
    the same key with another body raises IdempotencyKeyReused. Not enough
    tokens: InsufficientTokens, nothing debited (and nothing remembered, so a
    retry after a top-up can succeed). With auto top-up on, a debit that leaves
    the balance below its threshold buys the chosen package in the same
    transaction (at most N a month), and a debit the balance cannot cover buys
    it first and tries once more.
    """
    request_body = {"output_type": output_type, "quantity": quantity, "event_id": event_id}
    fingerprint = body_fingerprint(request_body)
    charge_box: list = []  # an auto top-up's charge, refunded if this transaction cannot commit
    try:
        with transaction.atomic():
            account = account_lock(account)
            now = clock.now(account)
            earlier = UsageRequest.objects.filter(account=account, idempotency_key=idempotency_key).first()
            if earlier is not None:
                if earlier.body_hash != fingerprint:
                    raise IdempotencyKeyReused(idempotency_key)
                return UsageRecorded(earlier.response, replayed=True)
            cost = rates_in_force(now)[output_type] * quantity
            prefs = token_settings(account)
            usage = {"kind": TokenEntry.USAGE, "amount": -cost, "output_type": output_type, "quantity": quantity,
                     "event_id": event_id}
            refused = None
            try:
                entry = ledger_add(account=account, **usage)
            except InsufficientTokens:
                # With auto top-up on, buy first and try once more; otherwise (or if still short)
                # refused, once the top-up it bought has committed.
                if not auto_top_up_allowed(account, prefs, now):
                    raise
                auto_top_up(account, prefs, now, charge_box, token=f"auto-{uuid.uuid4().hex}")
                try:
                    entry = ledger_add(account=account, **usage)
                except InsufficientTokens as short:
                    refused = short
            if refused is None:
                return _usage_answer(account, prefs, entry, now, charge_box, fingerprint, idempotency_key)
        raise refused
    except Exception:
        for charge in charge_box:
            charge_refund_quietly(charge)
        raise


def _usage_answer(account, prefs, entry, now, charge_box, fingerprint, idempotency_key) -> UsageRecorded:
    # Inside the debit's transaction: a debit left below the threshold tops up, then the answer is kept.
    balance = entry.balance_after
    if balance < prefs.auto_top_up_threshold and auto_top_up_allowed(account, prefs, now):
        balance = auto_top_up(account, prefs, now, charge_box, token=f"auto-{account.pk}-{entry.pk}") or balance
    low_balance_check(account, prefs, balance)
    body = {"debited": -entry.amount, "balance": balance, "output_type": entry.output_type,
            "quantity": entry.quantity, "event_id": entry.event_id, "entry_id": entry.pk}
    UsageRequest.objects.create(account=account, idempotency_key=idempotency_key, body_hash=fingerprint,
                                response=body)
    return UsageRecorded(body)
