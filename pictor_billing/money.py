"""Money: USD amounts as Decimal, rounded once, half-up, to the cent.

This is the only place that rounds money or converts it to the card
processor's minor units (cents). Floats never enter: `to_money` refuses them.
"""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
CURRENCY = "USD"


def to_money(value: Decimal | int | str) -> Decimal:
    """Round a Decimal, int or numeric string half-up to the cent.

    Floats are refused: 1.005 as a float is 1.00499999..., which is exactly the
    trap half-up rounding must not fall into.
    """
    if isinstance(value, float):
        raise TypeError("money must be Decimal, int or str, never float")
    try:
        amount = Decimal(value)
    except InvalidOperation as error:
        raise ValueError(f"not an amount of money: {value!r}") from error
    if not amount.is_finite():
        raise ValueError(f"not an amount of money: {value!r}")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def to_minor_units(amount: Decimal) -> int:
    """Convert a USD amount to integer cents for the card processor (exact, never rounded)."""
    if amount != to_money(amount):
        raise ValueError(f"{amount} has more than two decimals")
    return int(amount * 100)


def from_minor_units(cents: int) -> Decimal:
    """Convert integer cents back to a USD amount."""
    return (Decimal(cents) / 100).quantize(CENT)


def db_money(value) -> Decimal:
    """A sum of money straight from the database, as Decimal cents: PostgreSQL sends a Decimal, SQLite a
    number, read through its shortest repr (as the ORM's SQLite converter reads it), never float arithmetic."""
    return (value if isinstance(value, Decimal) else Decimal(repr(value))).quantize(CENT, rounding=ROUND_HALF_UP)


def format_usd(amount: Decimal) -> str:
    """Show an amount the way the Billing area does: $1,490.00, or −$49.00 for negatives."""
    amount = to_money(amount)
    sign = "\u2212" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"
