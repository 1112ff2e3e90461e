"""Card actions that depend on what the account has bought, and the default card read together with
other figures of the account."""

from django.db import connection, transaction

from accounts.models import Account
from accounts.services import account_lock
from licenses.models import License
from payments.models import Card
from payments.services import card_removal_refusal, card_successor
from payments.services import card_remove as payments_card_remove
from pictor_billing.compiled import prepared_cursor


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


# The card's columns the Billing area shows (its label, its expiry); the others load if ever asked.
_CARD_FIELDS = ["id", "account_id", "brand", "last4", "exp_month", "exp_year"]


def default_card_with(account: Account, **figures: tuple[str, list]) -> tuple[Card | None, dict]:
    """`payments.services.default_card` and these figures of the account, in one query: (the default card
    or None, {name: value}). Each figure is (a scalar SELECT in plain SQL, its parameters).

    Plain SQL that PostgreSQL and SQLite both run: built by the ORM (a FilteredRelation and the header's
    seven subqueries) the query cost ~6 ms of CPU on every page, the database well under one. The default
    card is unique per account and never a removed one (Card's constraints), so the join finds at most
    one row, as default_card does. PostgreSQL planned it in more time (0.35 ms) than it ran in: it is
    prepared, planned once per connection.
    """
    selects = ", ".join(f"({sql}) AS {name}" for name, (sql, _) in figures.items())
    params = [value for _, values in figures.values() for value in values]
    columns = ", ".join(f"card.{name}" for name in _CARD_FIELDS)
    with prepared_cursor(connection) as cursor:
        cursor.execute(f"SELECT {columns}{', ' if selects else ''}{selects} FROM (SELECT 1) AS one "
                       f"LEFT JOIN {Card._meta.db_table} card ON card.account_id = %s AND card.is_default = %s",
                       [*params, account.pk, True])
        row = cursor.fetchone()
    card_values, values = row[:len(_CARD_FIELDS)], row[len(_CARD_FIELDS):]
    card = None if card_values[0] is None else Card.from_db(connection.alias, _CARD_FIELDS, card_values)
    return card, dict(zip(figures, values, strict=True))
