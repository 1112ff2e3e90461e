"""The card gateway interface: what Pictor asks of a card processor, and the answers it understands.

Callers use `payments.services.get_gateway()`. The built-in sandbox (`payments/sandbox.py`) implements it with no
network; a Stripe gateway (`payments/stripe.py`, the only module that will import stripe) plugs in
behind the same calls. Every call that moves money takes an idempotency key: the processor answers
a repeated key with its first answer, so a retry can never move money twice. A call that gets no
answer raises ProcessorUnavailable: the outcome is then unknown, never guessed.
"""

import datetime
from dataclasses import dataclass, field
from typing import Protocol

# Payment statuses a processor reports; the same words as PaymentAttempt's.
AUTHORIZED, SUCCEEDED, REQUIRES_ACTION = "authorized", "succeeded", "requires_action"
FAILED, CANCELLED, REFUNDED = "failed", "cancelled", "refunded"


class CardError(Exception):
    """The card was refused when saved (bad number, expired, declined…); `message` is safe to show."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class ProcessorUnavailable(Exception):
    """The processor did not answer (network error, timeout, its own 5xx): the outcome is unknown."""


@dataclass(frozen=True)
class SavedCard:
    """What we keep of a card: the processor's reference and display details."""

    gateway_ref: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class PaymentOutcome:
    """The processor's answer about one payment (or one refund).

    `status` is one of AUTHORIZED (held, not captured), SUCCEEDED (money taken), REQUIRES_ACTION
    (the cardholder must authenticate in the browser), FAILED, CANCELLED (authorization released)
    or REFUNDED. `message` is plain words for the customer when it failed.
    """

    status: str
    processor_ref: str
    amount_cents: int
    amount_refunded_cents: int = 0
    decline_code: str = ""
    message: str = ""
    answer: dict = field(default_factory=dict)


class CardGateway(Protocol):
    name: str

    def save_card(self, *, number: str, exp_month: int, exp_year: int, cvc: str,
                  today: datetime.date) -> SavedCard: ...

    def authorize(self, *, card_ref: str, amount_cents: int, idempotency_key: str, description: str,
                  attempt_id: int, off_session: bool) -> PaymentOutcome:
        """Hold the amount on the card, to capture once the order is recorded (or cancel)."""

    def charge(self, *, card_ref: str, amount_cents: int, idempotency_key: str, description: str,
               attempt_id: int, off_session: bool) -> PaymentOutcome:
        """Take the amount in one step (renewals and retries of an issued invoice)."""

    def capture(self, *, processor_ref: str, idempotency_key: str) -> PaymentOutcome: ...

    def cancel(self, *, processor_ref: str, idempotency_key: str) -> PaymentOutcome:
        """Release an authorization: the customer's statement shows nothing."""

    def refund(self, *, processor_ref: str, amount_cents: int, idempotency_key: str,
               attempt_id: int) -> PaymentOutcome: ...

    def lookup(self, *, processor_ref: str = "", attempt_id: int | None = None) -> PaymentOutcome | None:
        """The payment as the processor has it, by its id or else by the attempt id it carries; None if
        it never reached the processor."""
