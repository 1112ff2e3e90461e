"""Template filters for money, the one format the Billing area, invoices and PDFs use.

`usd`: $2,450.00, or −$14.90 for a credit or discount (a true minus sign). `percent`: 0.15 -> 15%.
`summary_name`: the name a quote line's figure carries in the Order Summary (`data-summary`).
"""

from decimal import Decimal

from django import template

from pictor_billing.money import format_usd

register = template.Library()

# Quote line kind -> the figure's name in the summary (the rules' steps; README documents them).
SUMMARY_NAMES = {
    "item": "list_subtotal", "prorata": "prorata_adjustment", "volume_discount": "volume_discount",
    "coupon": "coupon_discount", "volume_adjustment": "volume_adjustment", "credit_carried": "credit_carried",
    "credit_applied": "credit_applied",
}


@register.filter
def usd(amount) -> str:
    """Format an amount as US dollars; empty for None."""
    if amount is None or amount == "":
        return ""
    return format_usd(Decimal(amount))


@register.filter
def percent(rate) -> str:
    """Format a rate as a whole percentage."""
    return f"{(Decimal(rate) * 100).normalize():f}%"


@register.filter
def summary_name(kind: str) -> str:
    """The `data-summary` name of a quote line of this kind."""
    return SUMMARY_NAMES.get(kind, kind)
