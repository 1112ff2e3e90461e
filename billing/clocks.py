"""Test clocks (staff only, never in production): one account's time, moved forward by hand.

An account with no invoices or payment attempts yet can get a test clock, set to a start time; it is
a test account for ever after (the daily run, finance and MRR leave it out; its invoices are
numbered PB-TEST-…). Advancing runs, day by day and in order, everything that falls due up to the
new time — renewals, retries, expiries, notices — through the same steps as the billing run, in the
calling process, and returns when it is done. What falls due comes from stored dates, never from the
task queue. Detaching freezes the clock where it stands.
"""

import datetime
import re

from django.conf import settings
from django.db import transaction

from accounts.models import Account
from accounts.services import account_lock
from billing.renewals import RunSummary
from billing.run import account_day
from invoices.models import Invoice
from payments.models import PaymentAttempt
from pictor_billing import clock


class ClockRefused(Exception):
    """The clock cannot be attached, advanced or detached as asked; the message says why."""


def clocks_allowed() -> bool:
    """On with the sandbox by default (TEST_CLOCKS); never with a live Stripe key."""
    return settings.TEST_CLOCKS and not settings.STRIPE_SECRET_KEY.startswith(("sk_live", "rk_live"))


def clock_attach(*, account: Account, start: datetime.datetime) -> Account:
    """Attach a test clock standing at `start` to an account that has billed nothing yet."""
    if not clocks_allowed():
        raise ClockRefused("Test clocks are switched off here (TEST_CLOCKS, or a live Stripe key).")
    if start.tzinfo is None:
        raise ClockRefused("Give the start time with its time zone, e.g. 2027-01-31T10:00:00Z.")
    with transaction.atomic():
        account = account_lock(account)
        if account.test_clock_attached:
            raise ClockRefused(f"{account} already has a test clock.")
        if Invoice.objects.filter(account=account).exists() or PaymentAttempt.objects.filter(account=account).exists():
            raise ClockRefused(f"{account} has invoices or payments already: a test clock needs a fresh account.")
        Account.objects.filter(pk=account.pk).update(is_test_account=True, test_clock_attached=True,
                                                     clock_frozen_at=start)
    account.refresh_from_db()
    return account


def clock_advance(*, account: Account, to: datetime.datetime) -> RunSummary:
    """Move the account's clock forward to `to`, running each day's work on the way, in order."""
    account.refresh_from_db()
    if not account.test_clock_attached:
        raise ClockRefused(f"{account} has no test clock to advance.")
    if to.tzinfo is None:
        raise ClockRefused("Give the time with its time zone, e.g. 2027-01-31T10:00:00Z.")
    now = clock.now(account)
    if to <= now:
        raise ClockRefused(f"A test clock only moves forward; it stands at {now:%Y-%m-%d %H:%M} UTC.")
    summary = RunSummary()
    day = now.date()
    while True:
        day += datetime.timedelta(days=1)
        if day > to.date():
            break
        # The day's run happens as the day starts, as the daily billing run would.
        _stand(account, datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC))
        summary.add(account_day(account, day))
    _stand(account, to)
    summary.accounts = 1
    return summary


def clock_detach(*, account: Account) -> Account:
    """Detach the clock: it stays where it stands (the account stays a test account)."""
    if not Account.objects.filter(pk=account.pk, test_clock_attached=True).update(test_clock_attached=False):
        raise ClockRefused(f"{account} has no test clock to detach.")
    account.refresh_from_db()
    return account


def _stand(account: Account, moment: datetime.datetime) -> None:
    Account.objects.filter(pk=account.pk).update(clock_frozen_at=moment)
    account.clock_frozen_at = moment


def parse_moment(text: str, *, since: datetime.datetime | None = None) -> datetime.datetime:
    """ISO 8601 (2027-01-31T10:00:00Z; a date alone means its midnight UTC), or +15d / +12h from `since`."""
    text = text.strip()
    relative = re.fullmatch(r"\+(\d{1,5})([dh])", text)
    if relative:
        if since is None:
            raise ClockRefused("A relative time (+15d) needs the clock's time to count from.")
        amount, unit = int(relative.group(1)), relative.group(2)
        return since + (datetime.timedelta(days=amount) if unit == "d" else datetime.timedelta(hours=amount))
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ClockRefused(f"Not a time: {text!r}. Use ISO 8601, e.g. 2027-01-31T10:00:00Z, or +15d.") from None
    if moment.tzinfo is None:
        if len(text) == 10:  # a date alone
            return moment.replace(tzinfo=datetime.UTC)
        raise ClockRefused("Give the time with its time zone, e.g. 2027-01-31T10:00:00Z.")
    return moment.astimezone(datetime.UTC)
