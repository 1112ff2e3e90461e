"""Template filter for dates, the one way the Billing area words a day: `{{ value|day }}` -> "Dec 1, 2027".

The words of `pricing.day_words` (invoice lines and messages), so pages, lines and messages agree; the
same as Django's `date:"M j, Y"` in English, at a small part of its cost (the Licenses and Invoices tabs
print fifty dates a page, and Django's date formatting was a quarter of a row's rendering).
"""

import datetime

from django import template
from django.utils import timezone

from pictor_billing.pricing import day_words

register = template.Library()


@register.filter
def day(value) -> str:
    """A date (or a datetime, in the current time zone) as words; "" for none."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime.datetime) and timezone.is_aware(value):
        value = timezone.localtime(value)
    return day_words(value)
