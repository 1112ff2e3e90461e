"""Cards, payment attempts and the credit balance.

Cards: adding (the processor is asked first, outside any transaction), choosing the default,
removing (the row stays, for the attempts that charged it).

Payment attempts follow docs/rules.md, "Payments to the processor": an attempt is recorded (pending)
inside the caller's locked transaction, which commits; only then is the processor called, and
its answer is recorded in a second short transaction. `attempt_send`, `attempt_capture`,
`attempt_cancel`, `attempt_refresh` and `attempt_refund` make the calls and refuse to run inside a
transaction, so a slow processor can never hold a lock. Statuses only move forward; an answer
that arrives late (a reconciliation racing the request that made the call) changes nothing.
"""

import logging
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Sum

from accounts.models import Account
from accounts.services import account_lock
from invoices.models import Invoice
from invoices.services import InvoiceStatusRefused, invoice_status_set, invoices_status_set
from payments import gateway as gw
from payments.gateway import CardGateway, PaymentOutcome, ProcessorUnavailable
from payments.models import Card, CreditEntry, PaymentAttempt, ProcessorCustomer
from payments.sandbox import SandboxGateway
from pictor_billing import clock
from pictor_billing.bulk import rows_update
from pictor_billing.money import ZERO, format_usd, to_minor_units

log = logging.getLogger(__name__)


class PaymentDeclined(Exception):
    """The card was declined (or could not be used); `reason` is plain words for the customer."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NoDefaultCard(Exception):
    """The account has no default card to charge."""


class CardRemovalRefused(Exception):
    """Removing this card would leave active licenses without a default card."""


class CardGone(Exception):
    """The card was removed already (another tab, a double click)."""


def get_gateway() -> CardGateway:
    """The gateway chosen by the PAYMENT_GATEWAY setting."""
    if settings.PAYMENT_GATEWAY == "sandbox":
        return SandboxGateway()
    if settings.PAYMENT_GATEWAY == "stripe":
        from payments.stripe import StripeGateway  # imported only when chosen: the sandbox needs no SDK

        return StripeGateway()
    raise ImproperlyConfigured(f"PAYMENT_GATEWAY={settings.PAYMENT_GATEWAY!r} is not available; use 'sandbox' or "
                               "'stripe'.")


def cards_in_browser() -> bool:
    """Whether cards are entered in the processor's own form in the browser (Stripe.js), not ours."""
    return getattr(get_gateway(), "collects_card_in_browser", False)


def processor_customer(account: Account) -> str:
    """The processor's customer for this account, created on first use (outside any transaction)."""
    processor = get_gateway()
    found = ProcessorCustomer.objects.filter(account=account, gateway=processor.name).first()
    if found is not None:
        return found.customer_ref
    _refuse_inside_transaction()
    email = account.billing_email or (account.users.order_by("pk").values_list("email", flat=True).first() or "")
    ref = processor.customer_create(account_id=account.pk, email=email, name=account.name)
    found, _ = ProcessorCustomer.objects.get_or_create(account=account, gateway=processor.name,
                                                       defaults={"customer_ref": ref})
    return found.customer_ref


def card_setup_begin(*, account: Account) -> dict:
    """Start saving a card in the processor's form: what the browser needs (a SetupIntent's secret)."""
    return get_gateway().card_setup_begin(customer_ref=processor_customer(account))


def card_setup_finish(*, account: Account, setup_ref: str) -> Card:
    """Save the card the browser's form set up (CardError if it did not); the first becomes the default."""
    saved = get_gateway().card_setup_finish(customer_ref=processor_customer(account), setup_intent_id=setup_ref)
    return _card_store(account, saved)


# --- credit balance ---------------------------------------------------------------------------------

def credit_balance(account: Account) -> Decimal:
    """The account's USD credit balance: the sum of its credit ledger."""
    return CreditEntry.objects.filter(account=account).balance()


def credit_balances(account_ids) -> dict[int, Decimal]:
    """`credit_balance` of many accounts in one query: {account id: balance} (zero ones too)."""
    found = dict(CreditEntry.objects.filter(account_id__in=account_ids).order_by().values("account_id")
                 .annotate(total=Sum("amount")).values_list("account_id", "total"))
    return {account_id: found.get(account_id) or ZERO for account_id in account_ids}


# --- cards ------------------------------------------------------------------------------------------

def default_card(account: Account) -> Card | None:
    return Card.objects.filter(account=account, is_default=True).first()


def default_cards(account_ids) -> dict[int, Card]:
    """`default_card` of many accounts in one query: {account id: card}, accounts without one left out."""
    return {card.account_id: card for card in Card.objects.filter(account_id__in=account_ids, is_default=True)}


def chargeable_card(account: Account) -> Card:
    """The default card, if it can be charged on the account's today; NoDefaultCard or PaymentDeclined."""
    card = default_card(account)
    if card is None:
        raise NoDefaultCard("Add a card to pay.")
    if card.is_expired(clock.today(account)):
        # The processor would decline it anyway; say why in our own words.
        raise PaymentDeclined("Your default card has expired. Add a card or make another one the default.")
    return card


def card_add(*, account: Account, number: str, exp_month: int, exp_year: int, cvc: str) -> Card:
    """Save a card through the gateway; the account's first card becomes its default.

    The processor is asked before any transaction starts; only the new row is written under the lock.
    """
    saved = get_gateway().save_card(number=number, exp_month=exp_month, exp_year=exp_year, cvc=cvc,
                                    today=clock.today(account))
    return _card_store(account, saved)


def _card_store(account: Account, saved) -> Card:
    with transaction.atomic():
        account = account_lock(account)
        existing = Card.objects.filter(account=account, gateway_ref=saved.gateway_ref).first()
        if existing is not None:  # the same setup finished twice (a resubmitted form)
            return existing
        has_default = Card.objects.filter(account=account, is_default=True).exists()
        card = Card.objects.create(
            account=account, gateway=get_gateway().name, gateway_ref=saved.gateway_ref, brand=saved.brand,
            last4=saved.last4, exp_month=saved.exp_month, exp_year=saved.exp_year, is_default=not has_default,
            created_at=clock.now(account),
        )
        if card.is_default:
            _tell_processor_default(card)
        return card


def _tell_processor_default(card: Card) -> None:
    # The processor's own default (Stripe's invoice_settings), set once our transaction commits.
    processor = get_gateway()
    if hasattr(processor, "card_default_set") and card.gateway == processor.name:
        transaction.on_commit(lambda: _quietly(processor.card_default_set, card_ref=card.gateway_ref))


def _quietly(call, **kwargs) -> None:
    try:
        call(**kwargs)
    except (ProcessorUnavailable, gw.CardError) as error:  # ours is the record; the processor's is a mirror
        log.warning("processor card update %s failed: %s", call.__name__, error)


@transaction.atomic
def card_make_default(*, account: Account, card: Card) -> Card:
    """Make this card the one every charge uses; CardGone if it was removed meanwhile."""
    account_lock(account)
    # Read again under the lock: a Remove that won the race has taken the card away, and making
    # it default now would leave the account with no default card at all.
    card = Card.objects.filter(pk=card.pk, account=account).first()
    if card is None:
        raise CardGone("That card has been removed.")
    Card.objects.filter(account=account, is_default=True).exclude(pk=card.pk).update(is_default=False)
    Card.objects.filter(pk=card.pk).update(is_default=True)
    card.is_default = True
    _tell_processor_default(card)
    return card


def card_remove(*, account: Account, card: Card, default_required: bool) -> Card | None:
    """Remove a card, inside the caller's transaction with the account locked; the new default, if any.

    With `default_required` (something still renews on the default card) the default card cannot
    go; otherwise the newest other card takes over as default. The row stays (removed), for the
    attempts that charged it. CardGone when it was removed already.
    """
    card = Card.objects.filter(pk=card.pk, account=account).first()
    if card is None:
        raise CardGone("That card has already been removed.")
    if refusal := card_removal_refusal(account=account, card=card, default_required=default_required):
        raise CardRemovalRefused(refusal)
    newest = card_successor(account=account, card=card)
    Card.objects.filter(pk=card.pk).update(is_default=False, removed_at=clock.now(account))
    processor = get_gateway()
    if hasattr(processor, "card_detach") and card.gateway == processor.name:
        transaction.on_commit(lambda: _quietly(processor.card_detach, card_ref=card.gateway_ref))
    if newest is not None:
        Card.objects.filter(pk=newest.pk).update(is_default=True)
        newest.is_default = True
        _tell_processor_default(newest)
    return newest


def card_removal_refusal(*, account: Account, card: Card, default_required: bool) -> str:
    """Why this card cannot be removed now, or "" when it can (the rule card_remove applies)."""
    if not (card.is_default and default_required):
        return ""
    if Card.objects.filter(account=account).exclude(pk=card.pk).exists():
        return ("Make another card the default before removing this one: "
                "your active licenses renew on the default card.")
    return ("Add another card and make it the default before removing this one: "
            "your active licenses renew on the default card.")


def card_successor(*, account: Account, card: Card) -> Card | None:
    """The card that becomes the default when this one is removed: the newest other card, if it is the default."""
    if not card.is_default:
        return None
    return Card.objects.filter(account=account).exclude(pk=card.pk).order_by("-created_at", "-pk").first()


# --- payment attempts -------------------------------------------------------------------------------

# Statuses only move forward: a late answer never undoes a later one.
_RANK = {PaymentAttempt.PENDING: 0, PaymentAttempt.UNKNOWN: 0, PaymentAttempt.REQUIRES_ACTION: 1,
         PaymentAttempt.AUTHORIZED: 2, PaymentAttempt.SUCCEEDED: 3, PaymentAttempt.FAILED: 3,
         PaymentAttempt.CANCELLED: 3, PaymentAttempt.REFUNDED: 4}
_OUTCOME_STATUS = {gw.AUTHORIZED: PaymentAttempt.AUTHORIZED, gw.SUCCEEDED: PaymentAttempt.SUCCEEDED,
                   gw.REQUIRES_ACTION: PaymentAttempt.REQUIRES_ACTION, gw.FAILED: PaymentAttempt.FAILED,
                   gw.CANCELLED: PaymentAttempt.CANCELLED, gw.REFUNDED: PaymentAttempt.REFUNDED}


def _refuse_inside_transaction() -> None:
    """A processor call inside a transaction would hold its locks for the processor's latency."""
    # The test runner's own per-test transaction is marked as such, and does not count.
    if any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks):
        raise RuntimeError("the processor is never called inside a database transaction")


def attempt_begin(
    *, account: Account, card: Card, purpose: str, kind: str, amount: Decimal, key_base: str, description: str,
    order: dict | None = None, invoice: Invoice | None = None, off_session: bool = False,
) -> PaymentAttempt:
    """Record a pending attempt, inside the caller's transaction with the account locked.

    Its key is `key_base` and the attempt's number for that base (this form's n-th attempt, this
    invoice's n-th attempt): deterministic, so the same logical payment always sends the same key.
    """
    if amount <= ZERO:
        raise ValueError("an attempt moves a positive amount")
    number = PaymentAttempt.objects.filter(account=account, idempotency_key__startswith=f"{key_base}:").count() + 1
    return PaymentAttempt.objects.create(
        account=account, card=card, invoice=invoice, purpose=purpose, kind=kind, amount=amount,
        description=description[:200], off_session=off_session, idempotency_key=f"{key_base}:{number}",
        gateway=get_gateway().name, order=order or {}, created_at=clock.now(account),
    )


def attempts_begin_first(*, attempts: list[dict]) -> list[PaymentAttempt]:
    """Record many pending attempts in one insert (each with `attempt_begin`'s keywords), inside the
    caller's transaction with their accounts locked, for key bases never used before (the invoices a
    batch has just issued): each key is `<key_base>:1`, and the unique key refuses a base used already."""
    gateway = get_gateway().name
    rows = []
    for spec in attempts:
        if spec["amount"] <= ZERO:
            raise ValueError("an attempt moves a positive amount")
        rows.append(PaymentAttempt(
            account=spec["account"], card=spec["card"], invoice=spec.get("invoice"), purpose=spec["purpose"],
            kind=spec["kind"], amount=spec["amount"], description=spec["description"][:200],
            off_session=spec.get("off_session", False), idempotency_key=f"{spec['key_base']}:1", gateway=gateway,
            order=spec.get("order") or {}, created_at=clock.now(spec["account"])))
    return PaymentAttempt.objects.bulk_create(rows)


@transaction.atomic
def attempt_record(attempt: PaymentAttempt, outcome: PaymentOutcome) -> PaymentAttempt:
    """Record the processor's answer (forward moves only); a success marks the invoice it pays paid."""
    locked = PaymentAttempt.objects.select_for_update(of=("self",))
    if _OUTCOME_STATUS[outcome.status] == PaymentAttempt.SUCCEEDED and attempt.kind != PaymentAttempt.REFUND:
        locked = locked.select_related("invoice__account")  # only a success can pay an invoice
    caller_copy, attempt = attempt, locked.get(pk=attempt.pk)
    if PaymentAttempt.card.is_cached(caller_copy) and caller_copy.card_id == attempt.card_id:
        attempt.card = caller_copy.card  # for the paid reason, without reading the card again
    if not _answer_apply(attempt, outcome):
        return attempt
    attempt.save(update_fields=ANSWER_FIELDS)
    if _pays_invoice(attempt):
        try:
            invoice_status_set(invoice=attempt.invoice, to_status=Invoice.PAID, attempt_id=attempt.pk,
                               reason=_paid_reason(attempt))
        except InvoiceStatusRefused:
            _paid_closed_invoice(attempt)
    return attempt


ANSWER_FIELDS = ["status", "processor_ref", "processor_answer", "failure_reason", "updated_at"]


def _answer_apply(attempt: PaymentAttempt, outcome: PaymentOutcome) -> bool:
    """Move the (locked) attempt to the processor's answer, unsaved; False for a late answer, ignored."""
    status = _OUTCOME_STATUS[outcome.status]
    if attempt.kind == PaymentAttempt.REFUND and status == PaymentAttempt.REFUNDED:
        status = PaymentAttempt.SUCCEEDED  # a refund attempt succeeds by refunding
    if _RANK[status] < _RANK[attempt.status] or (
            _RANK[status] == _RANK[attempt.status] == 3 and status != attempt.status):
        log.info("attempt %s: late answer %s ignored (it is %s)", attempt.pk, status, attempt.status)
        return False
    attempt.status = status
    attempt.processor_ref = attempt.processor_ref or outcome.processor_ref
    attempt.processor_answer = {**outcome.answer, "status": outcome.status, "decline_code": outcome.decline_code,
                                "message": outcome.message}
    attempt.failure_reason = outcome.message[:300] if status == PaymentAttempt.FAILED else ""
    return True


def _pays_invoice(attempt: PaymentAttempt) -> bool:
    return attempt.status == PaymentAttempt.SUCCEEDED and attempt.kind != PaymentAttempt.REFUND \
        and bool(attempt.invoice_id)


def _paid_reason(attempt: PaymentAttempt) -> str:
    return f"Paid: {format_usd(attempt.amount)} by {attempt.card.label}" if attempt.card else "Paid"


def _paid_closed_invoice(attempt: PaymentAttempt) -> None:
    # Money taken for an invoice closed meanwhile (void, failed): the attempt still records
    # it, so nothing is lost; support refunds it from the attempt in admin.
    log.error("attempt %s succeeded for %s, which is %s: refund it", attempt.pk, attempt.invoice.number,
              attempt.invoice.status)


@transaction.atomic
def attempts_record(
    answers: list[tuple[PaymentAttempt, PaymentOutcome | ProcessorUnavailable]],
) -> list[PaymentAttempt]:
    """`attempt_record` for many answers in one transaction (the renewal charge step's): the attempts
    moved forward in one update, the invoices the successes pay marked paid together. An answer that
    is ProcessorUnavailable leaves its attempt unknown, as `attempt_send` does. The attempts, as recorded."""
    answered = [(attempt, outcome) for attempt, outcome in answers if isinstance(outcome, PaymentOutcome)]
    locked = {attempt.pk: attempt for attempt in PaymentAttempt.objects.select_for_update(of=("self",))
              .select_related("invoice__account", "card").filter(pk__in=[attempt.pk for attempt, _ in answered])
              .order_by("pk")}
    moved = [locked[attempt.pk] for attempt, outcome in answered if _answer_apply(locked[attempt.pk], outcome)]
    now = clock.now()  # updated_at is real time (auto_now), which rows_update leaves to us
    for attempt in moved:
        attempt.updated_at = now
    rows_update(PaymentAttempt, moved, ANSWER_FIELDS)
    paying = [attempt for attempt in moved if _pays_invoice(attempt)]
    closed = invoices_status_set(moves=[(attempt.invoice, Invoice.PAID, _paid_reason(attempt), attempt.pk)
                                        for attempt in paying])
    for attempt in paying:
        if attempt.invoice in closed:
            _paid_closed_invoice(attempt)
    unanswered = {attempt.pk: _attempt_unknown(attempt, error) for attempt, error in answers
                  if not isinstance(error, PaymentOutcome)}
    return [unanswered.get(attempt.pk) or locked[attempt.pk] for attempt, _ in answers]


def _attempt_unknown(attempt: PaymentAttempt, error: Exception) -> PaymentAttempt:
    """No answer: the money may or may not have moved; reconciliation will ask the processor."""
    log.warning("attempt %s: no answer from the processor (%s); left for reconciliation", attempt.pk, error)
    with transaction.atomic():
        attempt = PaymentAttempt.objects.select_for_update().get(pk=attempt.pk)
        if attempt.status in (PaymentAttempt.PENDING, PaymentAttempt.AUTHORIZED):
            attempt.status = PaymentAttempt.UNKNOWN
            attempt.processor_answer = {**attempt.processor_answer, "error": str(error)[:200]}
            attempt.save(update_fields=["status", "processor_answer", "updated_at"])
        return attempt


def attempt_send(attempt: PaymentAttempt) -> PaymentAttempt:
    """Ask the processor to authorize (or charge) a pending attempt, and record what it says."""
    try:
        outcome = attempt_call(attempt)
    except ProcessorUnavailable as error:
        return _attempt_unknown(attempt, error)
    return attempt_record(attempt, outcome)


def attempt_call(attempt: PaymentAttempt) -> PaymentOutcome:
    """The processor's answer to a pending attempt (authorize, or charge), not recorded yet: the caller
    records it (`attempt_record`, `attempts_record`). ProcessorUnavailable when there is none. It
    reads nothing from our database (the attempt comes with its card), so any thread may send it."""
    _refuse_inside_transaction()
    processor = get_gateway()
    call = processor.authorize if attempt.kind == PaymentAttempt.AUTHORIZE else processor.charge
    return call(card_ref=attempt.card.gateway_ref, amount_cents=to_minor_units(attempt.amount),
                idempotency_key=attempt.idempotency_key, description=attempt.description,
                attempt_id=attempt.pk, off_session=attempt.off_session)


def _authorization_move(attempt: PaymentAttempt, step: str) -> PaymentAttempt:
    # Capture or cancel, each with a key of its own derived from the attempt's.
    _refuse_inside_transaction()
    call = getattr(get_gateway(), step)
    try:
        outcome = call(processor_ref=attempt.processor_ref, idempotency_key=f"{attempt.idempotency_key}:{step}")
    except ProcessorUnavailable as error:
        return _attempt_unknown(attempt, error)
    return attempt_record(attempt, outcome)


def attempt_capture(attempt: PaymentAttempt) -> PaymentAttempt:
    """Capture an authorized attempt whose order is recorded: the money is taken."""
    return _authorization_move(attempt, "capture")


def attempt_cancel(attempt: PaymentAttempt) -> PaymentAttempt:
    """Release an authorization (the order could not be honoured): the statement shows nothing."""
    return _authorization_move(attempt, "cancel")


def attempt_refresh(attempt: PaymentAttempt, *, resend_if_never_received: bool = False) -> PaymentAttempt:
    """Ask the processor how this payment stands, by its id or else by the attempt id it carries.

    A payment the processor never received is marked failed: no money moved. Or, with
    `resend_if_never_received` (a renewal charge, which a queue sends), it waits to be sent again
    with the same key. Used by reconciliation for attempts left pending or unknown, and after the
    cardholder authenticates.
    """
    _refuse_inside_transaction()
    try:
        outcome = get_gateway().lookup(processor_ref=attempt.processor_ref, attempt_id=attempt.pk)
    except ProcessorUnavailable as error:
        return _attempt_unknown(attempt, error)
    if outcome is None and resend_if_never_received:
        PaymentAttempt.objects.filter(pk=attempt.pk, status__in=[PaymentAttempt.PENDING, PaymentAttempt.UNKNOWN]
                                      ).update(status=PaymentAttempt.PENDING, sent_at=None)
        attempt.refresh_from_db()
        return attempt
    if outcome is None:
        outcome = PaymentOutcome(gw.FAILED, "", to_minor_units(attempt.amount), decline_code="not_received",
                                 message="The payment never reached the processor; nothing was charged.")
    return attempt_record(attempt, outcome)


def attempts_unsettled(account: Account, purposes: tuple[str, ...]):
    """The account's attempts for these purposes whose money may be moving (newest first)."""
    return PaymentAttempt.objects.filter(account=account, purpose__in=purposes,
                                         status__in=PaymentAttempt.IN_FLIGHT).order_by("-created_at", "-pk")


class RefundRefused(Exception):
    """A refund would give back more than the card paid, or the payment was never taken."""


def refunded_so_far(attempt: PaymentAttempt) -> Decimal:
    """What the refunds of this attempt have given back so far."""
    return PaymentAttempt.objects.filter(refund_of=attempt, kind=PaymentAttempt.REFUND,
                                         status=PaymentAttempt.SUCCEEDED).aggregate_amount()


def attempt_refund(*, attempt: PaymentAttempt, amount: Decimal, reason: str) -> PaymentAttempt:
    """Give money back to the card an attempt charged, through a refund attempt of its own.

    Recorded first (with the account locked, so two refunds cannot both pass the limit), then
    sent outside the transaction. A refund never exceeds what the card paid (RefundRefused).
    Once everything is given back the original attempt is marked refunded.
    """
    with transaction.atomic():
        account = account_lock(attempt.account)
        original = PaymentAttempt.objects.select_for_update().get(pk=attempt.pk)
        if original.kind == PaymentAttempt.REFUND or original.status not in (PaymentAttempt.SUCCEEDED,):
            raise RefundRefused("Only a payment that was taken can be refunded.")
        in_flight = PaymentAttempt.objects.filter(refund_of=original, status__in=PaymentAttempt.IN_FLIGHT)
        if in_flight.exists():
            raise RefundRefused("A refund of this payment is already under way.")
        left = original.amount - refunded_so_far(original)
        if not ZERO < amount <= left:
            raise RefundRefused(f"At most {format_usd(left)} of this payment can be refunded.")
        refund = attempt_begin(account=account, card=original.card, purpose=original.purpose,
                               kind=PaymentAttempt.REFUND, amount=amount, key_base=f"refund:{original.pk}",
                               description=reason, invoice=original.invoice)
        PaymentAttempt.objects.filter(pk=refund.pk).update(refund_of=original, processor_ref=original.processor_ref)
        refund.refund_of, refund.processor_ref = original, original.processor_ref
    _refuse_inside_transaction()
    try:
        outcome = get_gateway().refund(processor_ref=original.processor_ref, amount_cents=to_minor_units(amount),
                                       idempotency_key=refund.idempotency_key, attempt_id=refund.pk)
    except ProcessorUnavailable as error:
        return _attempt_unknown(refund, error)
    refund = attempt_record(refund, outcome)
    if refund.status == PaymentAttempt.SUCCEEDED and refunded_so_far(original) == original.amount:
        PaymentAttempt.objects.filter(pk=original.pk, status=PaymentAttempt.SUCCEEDED).update(
            status=PaymentAttempt.REFUNDED)
    return refund
