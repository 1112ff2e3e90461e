"""The billing emails sent ahead of renewals, each once: the reminder 30 days before an annual
renewal (with its amount), and the notice 14 days before a renewal the default card will not survive."""

import datetime

from django.db import IntegrityError, transaction

from accounts.models import Account
from accounts.services import email_account
from billing.models import BillingNotice
from billing.renewals import renewal_quote
from licenses.models import License
from payments.services import default_card
from pictor_billing import pricing
from pictor_billing.money import format_usd

ANNUAL_REMINDER_DAYS = 30
CARD_NOTICE_DAYS = 14


def _once(account: Account, kind: str, key: str, subject: str, body: str) -> bool:
    """Send it unless it was sent already (a unique row records it); whether it went."""
    try:
        with transaction.atomic():
            BillingNotice.objects.create(account=account, kind=kind, key=key)
            email_account(account, subject, body)
    except IntegrityError:
        return False
    return True


def notices_send(account: Account, today: datetime.date) -> int:
    """The account's notices due today (by its clock); how many went."""
    return accounts_notices_send([account], today)


def accounts_notices_send(accounts: list[Account], today: datetime.date) -> int:
    """The notices due `today` for a batch of accounts (two queries find who has one); how many went."""
    ids = [account.pk for account in accounts]
    reminder_day = today + datetime.timedelta(days=ANNUAL_REMINDER_DAYS)
    card_day = today + datetime.timedelta(days=CARD_NOTICE_DAYS)
    annual = set(License.objects.filter(account_id__in=ids, period=pricing.ANNUAL, period_end=reminder_day)
                 .renewing().values_list("account_id", flat=True))
    renewing_on_card_day = set(License.objects.filter(account_id__in=ids, period_end=card_day).renewing()
                               .values_list("account_id", flat=True))
    sent = 0
    for account in accounts:
        if account.pk in annual:
            sent += _annual_reminder(account, reminder_day)
        if account.pk in renewing_on_card_day:
            sent += _card_notice(account, card_day)
    return sent


def _annual_reminder(account: Account, reminder_day: datetime.date) -> bool:
    quote = renewal_quote(account, reminder_day)
    if quote is None:
        return False
    return _once(account, "annual_reminder", reminder_day.isoformat(), "Your annual Pictor licenses renew in 30 days",
                 f"On {reminder_day:%b} {reminder_day.day}, {reminder_day.year} your annual licenses renew "
                 f"for {format_usd(quote.total_due)}, charged to your default card. To change anything, "
                 "visit the Billing area before then.")


def _card_notice(account: Account, card_day: datetime.date) -> bool:
    card = default_card(account)
    if card is None or card.expires_on() >= card_day:
        return False
    return _once(account, "card_expiry", card_day.isoformat(), "Your card expires before your next renewal",
                 f"Your default card, {card.label}, expires on {card.expires_on():%b %Y}, before your "
                 f"renewal on {card_day:%b} {card_day.day}, {card_day.year}. Add a new card in the "
                 "Billing area so the renewal goes through.")
