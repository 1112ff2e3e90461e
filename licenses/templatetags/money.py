"""Template filters for money: `usd` ($1,490.00) and `percent` (0.15 -> 15%)."""

from decimal import Decimal

from django import template

from pictor_billing.money import format_usd

register = template.Library()


@register.filter
def usd(amount) -> str:
    """Format a Decimal as US dollars; empty for None."""
    if amount is None or amount == "":
        return ""
    return format_usd(Decimal(amount))


@register.filter
def percent(rate) -> str:
    """Format a rate as a whole percentage."""
    return f"{(Decimal(rate) * 100).normalize():f}%"
