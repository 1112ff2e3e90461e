"""Template filters for counts (tokens, invoices), the one way the Billing area writes whole numbers.

`count`: 2,100 (thousands separators whatever the locale settings say, a true minus sign).
`signed_count`: a ledger change, +1,000 or −2,100; nothing changed is 0, never "−0" or "+0".
"""

from django import template

register = template.Library()

MINUS = "\N{MINUS SIGN}"


def _whole(value) -> int | None:
    """The value as a whole number, or None when it is not one (the filter then shows it as it is)."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number == value or str(number) == str(value).strip() else None


@register.filter
def count(value) -> str:
    """A whole number with thousands separators: 2100 -> "2,100", -5 -> "−5"; anything else unchanged."""
    number = _whole(value)
    if number is None:
        return "" if value is None else str(value)
    return f"{MINUS if number < 0 else ''}{abs(number):,}"


@register.filter
def signed_count(value) -> str:
    """A change to a balance: +1,000, −2,100, and 0 for no change."""
    number = _whole(value)
    if number is None:
        return "" if value is None else str(value)
    if number > 0:
        return f"+{number:,}"
    return count(number)
