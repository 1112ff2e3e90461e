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
    sent = 0
    reminder_day = today + datetime.timedelta(days=ANNUAL_REMINDER_DAYS)
    annual = License.objects.filter(account=account, period=pricing.ANNUAL, period_end=reminder_day).renewing()
    if annual.exists():
        quote = renewal_quote(account, reminder_day)
        if quote is not None:
            sent += _once(account, "annual_reminder", reminder_day.isoformat(),
                          "Your annual Pictor licenses renew in 30 days",
                          f"On {reminder_day:%b} {reminder_day.day}, {reminder_day.year} your annual licenses renew "
                          f"for {format_usd(quote.total_due)}, charged to your default card. To change anything, "
                          "visit the Billing area before then.")
    card_day = today + datetime.timedelta(days=CARD_NOTICE_DAYS)
    if License.objects.filter(account=account, period_end=card_day).renewing().exists():
        card = default_card(account)
        if card is not None and card.expires_on() < card_day:
            sent += _once(account, "card_expiry", card_day.isoformat(), "Your card expires before your next renewal",
                          f"Your default card, {card.label}, expires on {card.expires_on():%b %Y}, before your "
                          f"renewal on {card_day:%b} {card_day.day}, {card_day.year}. Add a new card in the "
                          "Billing area so the renewal goes through.")
    return sent
