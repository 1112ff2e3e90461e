"""What the processor tells the webhook (`POST /stripe/webhook/`), acted on once per event.

Each event is stored by its id before anything else (a replay finds it handled and changes
nothing). The event's copy of an object is only a hint of what to look at: order of arrival is
not guaranteed, so a payment's state is asked of the processor again and settled through the very
steps reconciliation takes (`billing.reconcile.attempt_reconcile`, idempotent with a request racing
it). Handlers that only touch our rows run in one transaction with marking the event handled (the
event row locked, so two deliveries of one event act once); those that ask the processor do it
outside every transaction, as every processor call is made, then mark the event handled.

- payment_intent.succeeded / payment_failed / requires_action: the attempt (by the attempt id the
  payment carries, else by its id) is refreshed from the processor and reconciled;
- charge.refunded: the payment's refund attempts in flight that the processor's refunded total
  covers are refreshed; a payment given back in full is marked refunded;
- charge.dispute.created: the invoice is flagged for support (here, on the event) and support is emailed;
- payment_method.updated / automatically_updated: the saved card's expiry and last four (an older
  update arriving after a newer one changes nothing);
- payment_method.detached: the card is removed (the newest other card becomes the default);
- customer.deleted: the customer's cards are removed, and the account gets a new customer with its next card;
- anything else: stored and logged.
"""

import datetime
import logging
from collections.abc import Callable

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from accounts.services import account_lock_by_id
from billing.models import ProcessorEvent
from billing.reconcile import attempt_reconcile
from payments import gateway as gw
from payments.models import Card, PaymentAttempt, ProcessorCustomer
from payments.services import attempt_refresh, card_remove, get_gateway, refunded_so_far
from pictor_billing import clock
from pictor_billing.money import format_usd, from_minor_units, to_minor_units

log = logging.getLogger(__name__)


class HandlingFailed(Exception):
    """Handling an event raised; the event stays unhandled and the processor delivers it again."""


def event_receive(event: dict) -> ProcessorEvent:
    """Store a verified event once and act on it once; the stored event (its `outcome` says what was done)."""
    stored = _event_store(event)
    if stored.handled_at is not None:
        log.info("webhook %s (%s): a replay, handled already", stored.event_id, stored.type)
        return stored
    local, remote = LOCAL_HANDLERS.get(stored.type), REMOTE_HANDLERS.get(stored.type)
    try:
        if remote is not None:
            # Asks the processor: outside every transaction, then recorded.
            outcome = remote(stored)
            return _event_handled(stored, outcome)
        with transaction.atomic():
            stored = ProcessorEvent.objects.select_for_update().get(pk=stored.pk)
            if stored.handled_at is not None:  # another delivery of it won the race
                return stored
            if local is None:
                outcome = "ignored: not a type Pictor handles"
                log.info("webhook %s: unhandled type %s", stored.event_id, stored.type)
            else:
                outcome = local(stored)
            return _event_handled(stored, outcome)
    except Exception as error:
        log.exception("webhook %s (%s): handling failed; the processor will deliver it again",
                      stored.event_id, stored.type)
        ProcessorEvent.objects.filter(pk=stored.pk, handled_at__isnull=True).update(
            outcome=f"error: {type(error).__name__}: {error}"[:300])
        raise HandlingFailed(str(error)) from error


def _event_store(event: dict) -> ProcessorEvent:
    found = ProcessorEvent.objects.filter(event_id=event["id"]).first()
    if found is not None:
        return found
    obj = event["data"]["object"]
    try:
        with transaction.atomic():
            return ProcessorEvent.objects.create(
                event_id=event["id"][:255], type=event["type"][:100], object_id=str(obj.get("id") or "")[:255],
                created=_moment(event.get("created")),
                livemode=bool(event.get("livemode")), payload=event)
    except IntegrityError:  # the same event, delivered twice at once
        return ProcessorEvent.objects.get(event_id=event["id"])


def _moment(unix_time) -> datetime.datetime | None:
    """A Stripe timestamp (seconds since the epoch) as a UTC datetime; None if there is none."""
    if isinstance(unix_time, bool) or not isinstance(unix_time, int):
        return None
    try:
        return datetime.datetime.fromtimestamp(unix_time, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _event_handled(stored: ProcessorEvent, outcome: str) -> ProcessorEvent:
    # One conditional UPDATE: of two deliveries handled at once, the first to finish records it.
    ProcessorEvent.objects.filter(pk=stored.pk, handled_at__isnull=True).update(
        handled_at=clock.now(), outcome=outcome[:300], account_id=stored.account_id, invoice_id=stored.invoice_id,
        needs_support=stored.needs_support)
    stored.refresh_from_db()
    log.info("webhook %s (%s): %s", stored.event_id, stored.type, stored.outcome)
    return stored


def _obj(stored: ProcessorEvent) -> dict:
    return stored.payload["data"]["object"]


def _note(stored: ProcessorEvent, attempt: PaymentAttempt | None) -> None:
    """Tie the event to the account and invoice it is about (saved with the outcome)."""
    if attempt is not None:
        stored.account_id, stored.invoice_id = attempt.account_id, attempt.invoice_id


# --- payments -----------------------------------------------------------------------------------------

def _payments_of(intent_id: str):
    # Refund attempts carry the payment's id too; the payment itself is the attempt that is not one.
    return PaymentAttempt.objects.exclude(kind=PaymentAttempt.REFUND).filter(processor_ref=intent_id)


def _attempt_for_intent(intent: dict) -> PaymentAttempt | None:
    """Our attempt for this PaymentIntent: by the attempt id in its metadata, else by its id."""
    intent_id = str(intent.get("id") or "")
    attempt_id = str((intent.get("metadata") or {}).get("attempt_id") or "")
    if attempt_id.isdigit():
        attempt = PaymentAttempt.objects.exclude(kind=PaymentAttempt.REFUND).filter(pk=int(attempt_id)).first()
        # Only if it is this payment's (or has no payment id yet): another environment sharing the
        # Stripe account numbers its attempts too.
        if attempt is not None and attempt.processor_ref in ("", intent_id):
            return attempt
    return _payments_of(intent_id).first() if intent_id else None


def payment_intent_event(stored: ProcessorEvent) -> str:
    """Whatever the event says happened, settle the attempt from what the processor says now."""
    intent = _obj(stored)
    intent_id = str(intent.get("id") or "")
    attempt = _attempt_for_intent(intent)
    if attempt is None:
        return f"no attempt of ours for {intent_id}"
    _note(stored, attempt)
    if not attempt.in_flight:
        return f"attempt {attempt.pk} is {attempt.status} already; nothing to do"
    if not attempt.processor_ref:
        # The answer to our call was lost, so the attempt never learnt the payment's id. Adopt it
        # only if the processor knows that payment, for this attempt's amount.
        outcome = get_gateway().lookup(processor_ref=intent_id)
        if outcome is None or outcome.amount_cents != to_minor_units(attempt.amount):
            return f"{intent_id} is not attempt {attempt.pk}'s payment; left for reconciliation"
        PaymentAttempt.objects.filter(pk=attempt.pk, processor_ref="").update(processor_ref=intent_id)
        attempt.refresh_from_db()
    if attempt.kind != PaymentAttempt.CHARGE and attempt.status in (PaymentAttempt.REQUIRES_ACTION,
                                                                     PaymentAttempt.AUTHORIZED):
        # Reconciliation refreshes only what it has no answer for; an event says there is news.
        attempt = attempt_refresh(attempt)
    status = attempt_reconcile(attempt)
    return f"attempt {attempt.pk}: {status}"


def charge_refunded_event(stored: ProcessorEvent) -> str:
    """Settle the refunds in flight that the processor's refunded total now covers, oldest first."""
    charge = _obj(stored)
    intent_id = str(charge.get("payment_intent") or "")
    original = _payments_of(intent_id).first() if intent_id else None
    if original is None:
        return f"no payment of ours for {intent_id or charge.get('id')}"
    _note(stored, original)
    outcome = get_gateway().lookup(processor_ref=original.processor_ref)
    if outcome is None:
        return f"the processor does not know {original.processor_ref}; left for reconciliation"
    refunded = outcome.amount_cents if outcome.status == gw.REFUNDED else outcome.amount_refunded_cents
    settled = 0
    for refund in PaymentAttempt.objects.filter(refund_of=original, kind=PaymentAttempt.REFUND,
                                                status__in=(PaymentAttempt.PENDING, PaymentAttempt.UNKNOWN)
                                                ).order_by("pk"):
        # Only one the processor's total covers: an event about an earlier refund must not settle
        # a later one still on its way.
        if to_minor_units(refunded_so_far(original) + refund.amount) > refunded:
            continue
        settled += attempt_refresh(refund).status == PaymentAttempt.SUCCEEDED
    if refunded_so_far(original) == original.amount:
        PaymentAttempt.objects.filter(pk=original.pk, status=PaymentAttempt.SUCCEEDED).update(
            status=PaymentAttempt.REFUNDED)
    ours = to_minor_units(refunded_so_far(original))
    words = f"attempt {original.pk}: {settled} refund(s) settled; refunded {format_usd(from_minor_units(refunded))}"
    if refunded > ours:
        words += f", of which {format_usd(from_minor_units(refunded - ours))} not through Pictor"
    return words


# --- disputes -----------------------------------------------------------------------------------------

def dispute_created_event(stored: ProcessorEvent) -> str:
    """Flag the disputed payment's invoice for support, and email support."""
    dispute = _obj(stored)
    intent_id = str(dispute.get("payment_intent") or "")
    attempt = _payments_of(intent_id).select_related("account", "invoice").first() if intent_id else None
    _note(stored, attempt)
    stored.needs_support = True
    amount = dispute.get("amount")
    amount = format_usd(from_minor_units(amount)) if isinstance(amount, int) else "an unknown amount"
    invoice = attempt.invoice if attempt is not None else None
    about = (f"invoice {invoice.number} of {attempt.account.name} (account {attempt.account_id})" if invoice
             else f"payment {intent_id or dispute.get('charge') or '?'}, which matches no invoice of ours")
    body = (f"A cardholder disputed {amount} ({dispute.get('reason') or 'no reason given'}): {about}.\n"
            f"Dispute {dispute.get('id')}, charge {dispute.get('charge')}, event {stored.event_id}.\n"
            f"Respond in the Stripe dashboard by {_due(dispute)}; the event is under Processor events in admin "
            "(Needs support).")
    subject = f"Dispute opened: {invoice.number if invoice else intent_id or dispute.get('id')}"
    transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [settings.SELLER["email"]]),
                          robust=True)
    return f"flagged for support: {about}"


def _due(dispute: dict) -> str:
    due = _moment((dispute.get("evidence_details") or {}).get("due_by"))
    return f"{due:%Y-%m-%d %H:%M} UTC" if due is not None else "the date Stripe gives"


# --- cards --------------------------------------------------------------------------------------------

def _cards_of(payment_method_id: str):
    """Saved cards for this PaymentMethod (a Stripe card's gateway_ref is "cus_…/pm_…")."""
    if not payment_method_id:
        return Card.objects.none()
    return Card.objects.filter(gateway_ref__endswith=f"/{payment_method_id}")


def payment_method_updated_event(stored: ProcessorEvent) -> str:
    """New expiry and last four (the bank's card updater, or an edit in Stripe) on the saved card."""
    method = _obj(stored)
    if stored.created is not None and ProcessorEvent.objects.filter(
            object_id=stored.object_id, type__in=CARD_UPDATES, handled_at__isnull=False,
            created__gt=stored.created).exists():
        return "older than an update already applied; nothing to do"
    card_data = method.get("card") or {}
    changes = {name: card_data[name] for name in ("exp_month", "exp_year", "last4") if card_data.get(name)}
    updated = []
    for card in _cards_of(stored.object_id):
        account_lock_by_id(card.account_id)
        for name, value in changes.items():
            setattr(card, name, str(value)[:4] if name == "last4" else int(value))
        card.save(update_fields=list(changes))
        stored.account_id = card.account_id
        updated.append(f"card {card.pk} now {card.last4} {card.exp_month:02d}/{card.exp_year}")
    return "; ".join(updated) or f"no saved card for {stored.object_id}"


def payment_method_detached_event(stored: ProcessorEvent) -> str:
    """The card is gone at the processor: remove it here (the newest other card takes over as default)."""
    removed = [_card_gone(stored, card) for card in _cards_of(stored.object_id)]
    return "; ".join(removed) or f"no saved card for {stored.object_id} (removed already)"


def _card_gone(stored: ProcessorEvent, card: Card) -> str:
    account = account_lock_by_id(card.account_id)
    stored.account_id = account.pk
    # Removed at the processor, so removed here even if licenses renew on it: they will ask for a card.
    new_default = card_remove(account=account, card=card, default_required=False)
    if card.is_default and new_default is None:
        log.warning("account %s: its default card %s was removed at the processor; none is left", account.pk,
                    card.pk)
    return f"card {card.pk} removed" + (f"; card {new_default.pk} is the default" if new_default else "")


def customer_deleted_event(stored: ProcessorEvent) -> str:
    """The customer is gone at the processor: its cards are removed, and the next card makes a new one."""
    customer = stored.object_id
    if not customer:
        return "no customer id"
    # The default last, so none of this customer's cards is made the default on the way.
    cards = Card.objects.filter(gateway_ref__startswith=f"{customer}/").order_by("is_default", "pk")
    removed = [_card_gone(stored, card) for card in cards]
    forgotten, _ = ProcessorCustomer.objects.filter(customer_ref=customer).delete()
    words = "; ".join(removed) or f"no saved card for {customer}"
    return words + ("; the account will get a new customer with its next card" if forgotten else "")


CARD_UPDATES = ("payment_method.updated", "payment_method.automatically_updated")
# Handlers that touch only our rows, run in the transaction that marks the event handled.
LOCAL_HANDLERS: dict[str, Callable[[ProcessorEvent], str]] = {
    "charge.dispute.created": dispute_created_event,
    "payment_method.updated": payment_method_updated_event,
    "payment_method.automatically_updated": payment_method_updated_event,
    "payment_method.detached": payment_method_detached_event,
    "customer.deleted": customer_deleted_event,
}
# Handlers that ask the processor (outside every transaction).
REMOTE_HANDLERS: dict[str, Callable[[ProcessorEvent], str]] = {
    "payment_intent.succeeded": payment_intent_event,
    "payment_intent.payment_failed": payment_intent_event,
    "payment_intent.requires_action": payment_intent_event,
    "charge.refunded": charge_refunded_event,
}
