"""Card actions that depend on what the account has bought."""

from django.db import transaction

from accounts.models import Account
from accounts.services import account_lock
from licenses.models import License
from payments.models import Card
from payments.services import card_removal_refusal, card_successor
from payments.services import card_remove as payments_card_remove


@transaction.atomic
def card_remove(*, account: Account, card: Card) -> Card | None:
    """Remove a card; the default one only when no license is active (the newest other card takes over,
    and is returned). CardGone when it was removed already.

    The licenses are counted under the account lock, so a purchase landing at the same moment
    cannot leave active licenses without a default card.
    """
    account = account_lock(account)
    licenses_active = License.objects.filter(account=account).active().exists()
    return payments_card_remove(account=account, card=card, default_required=licenses_active)


def card_remove_preview(*, account: Account, card: Card) -> tuple[str, Card | None]:
    """What Remove would do, for the confirmation asked first: (why it is refused or "", the card that
    would become the default). Read without the lock; card_remove decides again under it."""
    licenses_active = License.objects.filter(account=account).active().exists()
    refusal = card_removal_refusal(account=account, card=card, default_required=licenses_active)
    return refusal, None if refusal else card_successor(account=account, card=card)
