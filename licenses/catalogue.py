"""The catalogue: the price list in force on a day and the tier cards, cached in each worker process.

Every entry is cached under (the price list version, the day), and nothing else: the version is
`PriceListVersion`'s token, which any save or delete of a price or feature replaces in the same
transaction (the signal receivers below), and the day is the account's today. So an admin's change
is seen by the very next request on every worker (each request reads the token from the database,
as part of a query it makes anyway), and a price taking effect at midnight is seen from midnight.

The cache is Django's local-memory backend (the `catalogue` alias in settings): one per process, no
query to read it. The database cache every process shares would cost a query per read, which is
what caching the price list is meant to save. Writes that skip model signals (`bulk_create`,
`QuerySet.update`, raw SQL) must call `price_list_changed()` themselves.
"""

import datetime
import uuid
from decimal import Decimal

from django.core.cache import caches
from django.db.models.signals import post_delete, post_save

from licenses.models import Feature, PriceListEntry, PriceListVersion
from pictor_billing import pricing

CACHE_ALIAS = "catalogue"


def price_list_version() -> str | None:
    """The price list's current version token (one query); None before the first price is saved."""
    return PriceListVersion.objects.filter(pk=1).values_list("token", flat=True).first()


def price_list_changed(**kwargs) -> None:
    """A new version token: every worker's cached price list and tier cards are left behind at once."""
    PriceListVersion.objects.update_or_create(pk=1, defaults={"token": uuid.uuid4().hex})


def connect_signals() -> None:
    """Replace the version with every save or delete of a price or a feature (licenses.apps calls this)."""
    for model in (PriceListEntry, Feature):
        for signal in (post_save, post_delete):
            signal.connect(price_list_changed, sender=model, dispatch_uid=f"price_list_changed:{model.__name__}")


def _cached(kind: str, day: datetime.date, version: str | None, load):
    if version is None:  # no version row yet: nothing could tell a stale entry from a fresh one
        return load()
    cache = caches[CACHE_ALIAS]
    key = f"{kind}:{version}:{day.isoformat()}"
    value = cache.get(key)
    if value is None:
        value = load()
        cache.set(key, value)
    return value


def _load_prices(day: datetime.date) -> dict[tuple[str, str], Decimal]:
    prices = {}
    for tier, period, unit_price in (PriceListEntry.objects.filter(effective_from__lte=day)
                                     .order_by("-effective_from").values_list("tier", "period", "unit_price")):
        prices.setdefault((tier, period), unit_price)
    return prices


def prices_on(day: datetime.date, *, version: str | None) -> dict[tuple[str, str], Decimal]:
    """The list price of every (tier, period) on this day: the latest entry effective by then."""
    return _cached("prices", day, version, lambda: _load_prices(day))


def _load_cards(day: datetime.date, version: str | None) -> list[dict]:
    prices = prices_on(day, version=version)
    features = list(Feature.objects.filter(on_card=True))
    return [
        {"tier": tier, "label": pricing.TIER_LABELS[tier], "popular": tier == pricing.PRO,
         "monthly": prices.get((tier, pricing.MONTHLY)), "annual": prices.get((tier, pricing.ANNUAL)),
         "features": [feature.name for feature in features if feature.in_tier(tier)]}
        for tier in pricing.TIERS
    ]


def cards_on(day: datetime.date, *, version: str | None) -> list[dict]:
    """Each tier with its prices in force on this day and the features shown on its card."""
    return _cached("cards", day, version, lambda: _load_cards(day, version))
