"""Cards and charges: adding, choosing and removing cards; charging the default card; credit balance."""

import logging
import uuid
from decimal import Decimal

from django.db import transaction

from accounts.models import Account
from accounts.services import account_lock
from payments.gateway import get_gateway
from payments.models import Card, Charge, CreditEntry
from pictor_billing import clock
from pictor_billing.money import ZERO, to_minor_units

log = logging.getLogger(__name__)


class PaymentDeclined(Exception):
    """The card was declined; `reason` is plain words for the customer."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NoDefaultCard(Exception):
    """The account has no default card to charge."""


class CardRemovalRefused(Exception):
    """Removing this card would leave active licenses without a default card."""


def credit_balance(account: Account) -> Decimal:
    """The account's USD credit balance: the sum of its credit ledger."""
    return CreditEntry.objects.filter(account=account).balance()


def default_card(account: Account) -> Card | None:
    return Card.objects.filter(account=account, is_default=True).first()


@transaction.atomic
def card_add(*, account: Account, number: str, exp_month: int, exp_year: int, cvc: str) -> Card:
    """Save a card through the gateway; the account's first card becomes its default."""
    saved = get_gateway().save_card(number=number, exp_month=exp_month, exp_year=exp_year, cvc=cvc,
                                    today=clock.today(account))
    account_lock(account)
    has_default = Card.objects.filter(account=account, is_default=True).exists()
    return Card.objects.create(
        account=account, gateway=get_gateway().name, gateway_ref=saved.gateway_ref, brand=saved.brand,
        last4=saved.last4, exp_month=saved.exp_month, exp_year=saved.exp_year, is_default=not has_default,
    )


@transaction.atomic
def card_make_default(*, account: Account, card: Card) -> None:
    """Make this card the one every charge uses."""
    account_lock(account)
    Card.objects.filter(account=account, is_default=True).exclude(pk=card.pk).update(is_default=False)
    Card.objects.filter(pk=card.pk, account=account).update(is_default=True)


def card_remove(*, account: Account, card: Card, default_required: bool) -> None:
    """Remove a card, inside the caller's transaction with the account locked.

    With `default_required` (something still renews on the default card) the
    default card cannot go; otherwise the newest other card takes over as default.
    """
    card = Card.objects.get(pk=card.pk, account=account)
    if card.is_default and default_required:
        if Card.objects.filter(account=account).exclude(pk=card.pk).exists():
            raise CardRemovalRefused("Make another card the default before removing this one: "
                                     "your active licenses renew on the default card.")
        raise CardRemovalRefused("Add another card and make it the default before removing this one: "
                                 "your active licenses renew on the default card.")
    card.delete()
    if card.is_default:
        newest = Card.objects.filter(account=account).order_by("-created_at", "-pk").first()
        if newest is not None:
            Card.objects.filter(pk=newest.pk).update(is_default=True)


def card_charge_default(*, account: Account, amount: Decimal, idempotency_key: str, description: str) -> Charge | None:
    """Charge the default card; call inside the caller's transaction with the account locked.

    Nothing is charged for $0.00. Raises NoDefaultCard or PaymentDeclined.
    """
    card = default_card(account)
    if card is None:
        raise NoDefaultCard("Add a card to pay.")
    if card.is_expired(clock.today(account)):
        # The processor would decline it anyway; say why in our own words.
        raise PaymentDeclined("Your default card has expired. Add a card or make another one the default.")
    if amount <= ZERO:
        return None
    # One key per attempt: a retry after a refunded attempt must be a new charge,
    # never a replay of the refunded one (the form token stops double purchases).
    key = f"{idempotency_key}:{card.pk}:{uuid.uuid4().hex}"
    result = get_gateway().charge(card_ref=card.gateway_ref, amount_cents=to_minor_units(amount),
                                  idempotency_key=key, description=description)
    if not result.succeeded:
        log.info("charge declined for account %s: %s", account.pk, result.decline_reason)
        raise PaymentDeclined(result.decline_reason)
    return Charge.objects.create(account=account, card=card, amount=amount, gateway_ref=result.gateway_ref,
                                 idempotency_key=key, description=description[:200])


def charge_refund_quietly(charge: Charge | None) -> None:
    """Give a charge back when the transaction that took it could not commit."""
    if charge is None:
        return
    try:
        get_gateway().refund(charge_ref=charge.gateway_ref)
    except Exception:  # the refund is best effort; the failure is logged for support
        log.exception("refund of %s failed; refund it by hand", charge.gateway_ref)

