"""The card gateway interface, and the built-in sandbox processor.

Callers use `get_gateway()` and the two calls below; a Stripe gateway
(`payments/stripe.py`, the only module that will import stripe) plugs in
behind the same interface. The sandbox needs no network: it accepts the usual
test numbers and keeps only brand, last four and expiry, like Stripe would.
"""

import datetime
import hashlib
import secrets
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class CardError(Exception):
    """The card was refused when saved (bad number, expired, …); `message` is safe to show."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class SavedCard:
    """What we keep of a card: the processor's reference and display details."""

    gateway_ref: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class ChargeResult:
    """The outcome of a charge; `decline_reason` is plain words for the customer."""

    succeeded: bool
    gateway_ref: str = ""
    decline_reason: str = ""


class CardGateway(Protocol):
    name: str

    def save_card(self, *, number: str, exp_month: int, exp_year: int, cvc: str,
                  today: datetime.date) -> SavedCard: ...

    def charge(self, *, card_ref: str, amount_cents: int, idempotency_key: str, description: str) -> ChargeResult: ...

    def refund(self, *, charge_ref: str) -> None: ...


def luhn_ok(number: str) -> bool:
    """The Luhn checksum every real card number passes."""
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_brand(number: str) -> str:
    """The brand, from the number's prefix."""
    if number.startswith("4"):
        return "Visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(number[:4]) <= 2720:
        return "Mastercard"
    if number[:2] in {"34", "37"}:
        return "Amex"
    if number.startswith(("6011", "65")):
        return "Discover"
    return "Card"


class SandboxGateway:
    """Built-in test processor (SPEC: Payment methods); charges are decided by the card's test number."""

    name = "sandbox"
    # Test numbers that save fine but fail when charged, as on Stripe.
    DECLINES = {
        "4000000000000002": ("declined", "Your card was declined."),
        "4000000000009995": ("insufficient_funds", "Your card has insufficient funds."),
    }

    def save_card(self, *, number: str, exp_month: int, exp_year: int, cvc: str,
                  today: datetime.date) -> SavedCard:
        number = "".join(number.split()).replace("-", "")
        if not (number.isascii() and number.isdigit()) or not 13 <= len(number) <= 19 or not luhn_ok(number):
            raise CardError("That card number is not valid.", field="number")
        if not 1 <= exp_month <= 12 or (exp_year, exp_month) < (today.year, today.month):
            raise CardError("That card has expired.", field="exp_month")
        if not (cvc.isascii() and cvc.isdigit()) or len(cvc) not in (3, 4):
            raise CardError("The security code must be 3 or 4 digits.", field="cvc")
        # The reference encodes only how the sandbox should behave, never the number.
        behaviour = self.DECLINES.get(number, ("ok", ""))[0]
        return SavedCard(f"sb_card_{behaviour}_{secrets.token_hex(8)}", card_brand(number), number[-4:],
                         exp_month, exp_year)

    def charge(self, *, card_ref: str, amount_cents: int, idempotency_key: str, description: str) -> ChargeResult:
        for behaviour, reason in self.DECLINES.values():
            if card_ref.startswith(f"sb_card_{behaviour}_"):
                return ChargeResult(False, decline_reason=reason)
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
        return ChargeResult(True, gateway_ref=f"sb_ch_{digest}")

    def refund(self, *, charge_ref: str) -> None:
        return None


def get_gateway() -> CardGateway:
    """The gateway chosen by the PAYMENT_GATEWAY setting."""
    if settings.PAYMENT_GATEWAY == "sandbox":
        return SandboxGateway()
    raise ImproperlyConfigured(
        f"PAYMENT_GATEWAY={settings.PAYMENT_GATEWAY!r} is not available; use 'sandbox' (Stripe comes next)."
    )
