"""One clock: now and today, for an account, in UTC.

Every money path and date rule asks this module (pricing dates, pro-rata, card expiry, when a
license has ended, ledger and invoice dates, auto top-up's monthly limit), never
`timezone.now()` or `date.today()` directly. An account's clock is real time unless the account
carries `clock_frozen_at` (a test clock, staff only): then its clock stands at that moment until
it is moved, and everything for that account happens then, while every other account keeps real
time. The clock reads that plain field, so this module imports no app (Django's own
`PasswordResetTokenGenerator._now()` is the small precedent).
"""

import datetime

from django.utils import timezone


def now(account=None) -> datetime.datetime:
    """The current moment for this account (real time without an account or a test clock), in UTC."""
    frozen = getattr(account, "clock_frozen_at", None) if account is not None else None
    moment = frozen if frozen is not None else timezone.now()
    return moment.astimezone(datetime.UTC)


def today(account=None) -> datetime.date:
    """The current calendar date for this account, in UTC (billing dates are UTC dates)."""
    return now(account).date()
