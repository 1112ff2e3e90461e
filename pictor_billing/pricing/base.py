"""What every quote shares: tiers and periods, the volume brackets, a quote's lines, its fingerprint."""

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

from pictor_billing.money import ZERO

BASIC, PRO, PREMIUM = "basic", "pro", "premium"
TIERS = (BASIC, PRO, PREMIUM)  # lowest first: a tier runs events of its own tier and below
TIER_LABELS = {BASIC: "Basic", PRO: "Pro", PREMIUM: "Premium"}
MONTHLY, ANNUAL = "monthly", "annual"
PERIODS = (MONTHLY, ANNUAL)
PERIOD_LABELS = {MONTHLY: "Monthly", ANNUAL: "Annual"}

MIN_QUANTITY, MAX_QUANTITY = 1, 100

# (lowest active-license count, rate), highest first.
VOLUME_BRACKETS = ((10, Decimal("0.15")), (5, Decimal("0.10")), (1, Decimal("0.00")))

PERCENT, FIXED = "percent", "fixed"


class PricingError(ValueError):
    """The inputs cannot be priced (unknown tier or period, quantity out of range, no price)."""


@dataclass(frozen=True)
class QuoteLine:
    """One line of a quote or invoice; `amount` is signed (credits and discounts negative)."""

    kind: str
    description: str
    quantity: int
    unit_price: Decimal
    amount: Decimal


def volume_rate(active_count: int) -> Decimal:
    """The volume discount rate for this many active licenses (all tiers and periods)."""
    for lowest, rate in VOLUME_BRACKETS:
        if active_count >= lowest:
            return rate
    return ZERO


def next_bracket(active_count: int) -> tuple[int, Decimal] | None:
    """How many more licenses reach the next bracket, and its rate; None at the top."""
    for lowest, rate in reversed(VOLUME_BRACKETS):
        if lowest > active_count and rate > volume_rate(active_count):
            return lowest - active_count, rate
    return None


def percent(rate: Decimal) -> str:
    """A rate as the lines word it: 0.15 -> 15%."""
    return f"{(rate * 100).normalize():f}%"


def quote_fingerprint(quote) -> str:
    """A hash of everything a quote shows: the choice, every line, the credit applied, the total.

    Two quotes with the same fingerprint show the customer the same order, line for line; the
    purchase and top-up forms carry it (signed) so that only the order on screen is ever charged.
    Comparing totals alone would not do: with credit covering both, two different orders total $0.00.
    Every quote type says what was chosen in its `choice`.
    """
    lines = [[line.kind, line.description, line.quantity, str(line.unit_price), str(line.amount)]
             for line in quote.lines]
    shown = [list(quote.choice), lines, str(quote.credit_applied), str(quote.total_due)]
    return hashlib.sha256(json.dumps(shown, separators=(",", ":")).encode()).hexdigest()
