"""Licenses: quotes from the account's state (the DB side of the pricing service), new licenses,
cancellation and undo, downgrades scheduled for the billing date, and event leases for the device API."""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Case, Exists, OuterRef, Value, When

from accounts.models import Account
from accounts.services import account_lock
from licenses import catalogue
from licenses.models import (
    Coupon,
    CouponRedemption,
    EventLease,
    License,
    LicenseTerm,
    PriceListVersion,
    Purchase,
    RenewalGroup,
    normalize_code,
)
from payments.models import CreditEntry
from pictor_billing import clock, pricing
from pictor_billing.money import ZERO, to_money

# In pricing.ActiveLicense's field order: plain rows, no model instances.
ACTIVE_LICENSE_FIELDS = ("id", "tier", "period", "list_price", "discount_rate", "period_start", "period_end")


class LicenseActionRefused(Exception):
    """The license cannot be cancelled or un-cancelled in its current state."""


def prices_in_force(day: datetime.date) -> dict[tuple[str, str], Decimal]:
    """The list price of every (tier, period) on this day: the latest entry effective by then.

    One query (the price list's version); the prices themselves come from the catalogue cache.
    """
    return catalogue.prices_on(day, version=catalogue.price_list_version())


def tier_cards(today: datetime.date, *, version: str | None = None) -> list[dict]:
    """Each tier with its prices in force today and the features shown on its card (cached; see catalogue).

    `version`: the price list version already read in this request (`purchase_state`), saving a query.
    """
    return catalogue.cards_on(today, version=version or catalogue.price_list_version())


# The coupon with its redemptions counted (all, and this account's) as plain SQL: the ORM spent ~3 ms
# building its GROUP BY on every Order Summary with a code typed in, the database well under one.
_COUPON, _REDEMPTION = Coupon._meta.db_table, CouponRedemption._meta.db_table
COUPON_WITH_COUNTS_SQL = f"""
    SELECT coupon.*,
           (SELECT COUNT(*) FROM {_REDEMPTION} r WHERE r.coupon_id = coupon.id) AS times_redeemed,
           (SELECT COUNT(*) FROM {_REDEMPTION} r WHERE r.coupon_id = coupon.id AND r.account_id = %s)
               AS redeemed_here
    FROM {_COUPON} coupon WHERE coupon.code = %s"""


def coupon_with_counts(code: str, account: Account, *, lock: bool = False) -> Coupon | None:
    """The coupon with this code, annotated with its redemptions (all, and this account's); None if unknown.

    With `lock`, the coupon row is locked first (PostgreSQL refuses FOR UPDATE
    together with the counts, so that is a query of its own).
    """
    if lock and not Coupon.objects.select_for_update().filter(code=code).values_list("pk").first():
        return None
    return next(iter(Coupon.objects.raw(COUPON_WITH_COUNTS_SQL, [account.pk, code])), None)


def coupon_terms(coupon: Coupon) -> pricing.CouponTerms:
    """The terms of a coupon from `coupon_with_counts`, as the pricing service takes them."""
    return pricing.CouponTerms(
        code=coupon.code, kind=coupon.kind, value=coupon.value, combines_with_volume=coupon.combines_with_volume,
        starts_at=coupon.starts_at, expires_at=coupon.expires_at, max_redemptions=coupon.max_redemptions,
        times_redeemed=coupon.times_redeemed, once_per_account=coupon.once_per_account,
        used_by_account=coupon.redeemed_here > 0, tiers=frozenset(coupon.tiers), periods=frozenset(coupon.periods),
    )


@dataclass(frozen=True)
class PurchaseState:
    """What pricing a purchase needs from the database, read in one query (`purchase_state`)."""

    active_count: int
    # The active licenses below the top volume rate: only they can get an adjustment. An account
    # of 500 licenses, all at 15%, has none.
    below_top_rate: tuple[pricing.ActiveLicense, ...]
    credit_balance: Decimal
    price_list_version: str | None


TOP_RATE = max(rate for _, rate in pricing.VOLUME_BRACKETS)


def _purchase_state_sql() -> str:
    # Plain SQL that PostgreSQL and SQLite both run: the ORM spent ~8 ms building this one query on
    # every Order Summary (FilteredRelation and three subqueries), the database ~0.4 ms running it.
    # One row whatever the account's size: the count, the credit balance (as
    # payments.services.credit_balance sums it) and the version, left-joined to the licenses below
    # the top rate (one row with NULLs when there are none). "status <> expired" is
    # LicenseQuerySet.active(); the order is License.Meta.ordering.
    lic, credit, version = (model._meta.db_table for model in (License, CreditEntry, PriceListVersion))
    return f"""
        SELECT (SELECT COUNT(*) FROM {lic} WHERE account_id = %s AND status <> %s),
               (SELECT COALESCE(SUM(amount), 0) FROM {credit} WHERE account_id = %s),
               (SELECT token FROM {version} WHERE id = 1),
               {", ".join(f"below.{field}" for field in ACTIVE_LICENSE_FIELDS)}
        FROM (SELECT 1) AS one
        LEFT JOIN {lic} below ON below.account_id = %s AND below.status <> %s AND below.discount_rate < %s
        ORDER BY below.purchased_on DESC, below.id DESC"""


PURCHASE_STATE_SQL = _purchase_state_sql()


def _decimal(value, places: int) -> Decimal:
    """A database decimal as a Decimal: PostgreSQL sends one, SQLite a number (as the ORM's own SQLite
    converter does, through its shortest repr, never float arithmetic)."""
    return (value if isinstance(value, Decimal) else Decimal(repr(value))).quantize(Decimal(1).scaleb(-places))


def _date(value) -> datetime.date:
    return datetime.date.fromisoformat(value) if isinstance(value, str) else value  # SQLite sends text


def purchase_state(account: Account) -> PurchaseState:
    """The account's active-license count, its licenses below the top volume rate, its credit balance
    and the price list version: one query, whatever the account's size. Inside `account_lock` it
    reads what the lock protects."""
    with connection.cursor() as cursor:
        cursor.execute(PURCHASE_STATE_SQL, [account.pk, License.EXPIRED, account.pk,
                                            account.pk, License.EXPIRED, TOP_RATE])
        rows = cursor.fetchall()
    active_count, credit, version = rows[0][:3]
    below = tuple(
        pricing.ActiveLicense(id=pk, tier=tier, period=period, list_price=_decimal(price, 2),
                              discount_rate=_decimal(rate, 2), period_start=_date(start), period_end=_date(end))
        for _, _, _, pk, tier, period, price, rate, start, end in rows if pk is not None
    )
    return PurchaseState(active_count=active_count, below_top_rate=below, credit_balance=_decimal(credit, 2),
                         price_list_version=version)


def purchase_quote(
    *, account: Account, tier: str, period: str, quantity: int, coupon_code: str = "", lock: bool = False,
    state: PurchaseState | None = None,
) -> tuple[pricing.Quote, Coupon | None]:
    """Quote a purchase from the account's current state, at the account's clock; the preview and
    the purchase both call this.

    With `lock`, the coupon row is locked too (the account must already be
    locked), so a redemption limit holds when purchases race. `state`: `purchase_state(account)`
    already read in this request (the Order Summary also needs its price list version).
    """
    now = clock.now(account)
    code = normalize_code(coupon_code)
    coupon = coupon_with_counts(code, account, lock=lock) if code else None
    state = state or purchase_state(account)
    reached = pricing.volume_rate(state.active_count + quantity) if isinstance(quantity, int) else ZERO
    quote = pricing.quote_purchase(
        prices=catalogue.prices_on(now.date(), version=state.price_list_version), tier=tier, period=period,
        quantity=quantity, active_licenses=[lic for lic in state.below_top_rate if lic.discount_rate < reached],
        active_count=state.active_count, coupon_code=code, coupon=coupon_terms(coupon) if coupon else None,
        now=now, anchor_day=account.monthly_anchor_day, credit_balance=state.credit_balance,
    )
    return quote, coupon


def monthly_group(account: Account, *, anchor_on: datetime.date) -> RenewalGroup:
    """The account's open monthly group (its anchor), created on its first monthly license."""
    group = RenewalGroup.objects.filter(account=account, period=pricing.MONTHLY, ended_on__isnull=True).first()
    return group or RenewalGroup.objects.create(account=account, period=pricing.MONTHLY, anchor_on=anchor_on,
                                                created_at=clock.now(account))


def licenses_create(*, account: Account, purchase: Purchase, quote: pricing.Quote, today: datetime.date,
                    invoice) -> None:
    """The purchase's new licenses with their first term, in their renewal group; and the new bracket
    rate on the licenses its quote adjusted."""
    if quote.period == pricing.MONTHLY and quote.prorata_days is not None:
        # Bought mid-cycle: its period is the whole cycle, so a later adjustment's
        # "unused share" is measured the same way as for the others.
        period_start = quote.renews_on - datetime.timedelta(days=quote.cycle_days)
    else:
        period_start = today
    if quote.period == pricing.MONTHLY:
        group = monthly_group(account, anchor_on=today)
    else:  # the licenses of one annual purchase renew together, on its anniversaries
        group = RenewalGroup.objects.create(account=account, period=pricing.ANNUAL, anchor_on=today,
                                            created_at=clock.now(account))
    licenses = License.objects.bulk_create(
        License(account=account, purchase=purchase, group=group, tier=quote.tier, period=quote.period,
                purchased_on=today, period_start=period_start, period_end=quote.renews_on,
                list_price=quote.unit_price, discount_rate=quote.volume_rate)
        for _ in range(quote.quantity)
    )
    # What each paid for this term: its share of the order after pro-rata, bracket and coupon.
    paid = to_money((quote.charged_base - quote.volume_discount - quote.coupon_discount) / quote.quantity)
    LicenseTerm.objects.bulk_create(
        LicenseTerm(license=lic, kind=LicenseTerm.PURCHASE, starts_on=today, ends_on=quote.renews_on, tier=quote.tier,
                    period=quote.period, list_price=quote.unit_price, rate=quote.volume_rate, paid=paid,
                    invoice=invoice)
        for lic in licenses
    )
    # Licenses already active now carry the new bracket's rate (docs/rules.md: Volume discounts).
    adjusted = [adjustment.license_id for adjustment in quote.adjustments]
    if adjusted:
        License.objects.filter(pk__in=adjusted, account=account).update(discount_rate=quote.volume_rate)


@transaction.atomic
def license_cancel(*, account: Account, license: License) -> License:
    """Cancel at period end: the license stays active until its billing date, then expires."""
    account = account_lock(account)
    license = License.objects.select_for_update().get(pk=license.pk, account=account)
    if license.has_ended:
        raise LicenseActionRefused("This license has already expired.")
    if license.cancel_at_period_end:
        raise LicenseActionRefused("This license is already cancelled.")
    license.cancel_at_period_end = True
    license.cancelled_at = clock.now(account)
    license.save(update_fields=["cancel_at_period_end", "cancelled_at"])
    return license


@transaction.atomic
def license_undo_cancel(*, account: Account, license: License) -> License:
    """Undo a cancellation; possible until the license's billing date."""
    account = account_lock(account)
    license = License.objects.select_for_update().get(pk=license.pk, account=account)
    if license.has_ended:
        raise LicenseActionRefused("This license has expired; buy a new one instead.")
    if not license.cancel_at_period_end:
        raise LicenseActionRefused("This license is not cancelled.")
    license.cancel_at_period_end = False
    license.cancelled_at = None
    license.save(update_fields=["cancel_at_period_end", "cancelled_at"])
    return license


TIER_RANK = {tier: rank for rank, tier in enumerate(pricing.TIERS)}


class LicenseTierNeeded(Exception):
    """The account has no active license that can run an event of this tier."""

    def __init__(self, tier: str):
        super().__init__(tier)
        self.tier = tier


class AllLicensesBusy(Exception):
    """Every license that could run this event is running another one."""


class EventLiveOnLowerTier(Exception):
    """The event is already live on a license whose tier cannot run it at the tier asked for."""


class EventNotLive(Exception):
    """No live event has this id."""


def event_start(*, account: Account, event_id: str, event_tier: str, device_id: str) -> tuple[EventLease, bool]:
    """Lease the lowest sufficient free license to a live event (a tier runs its own events and lower ones).

    Returns the lease and whether it is new: starting the same event again returns its lease.
    Raises LicenseTierNeeded when the account has no license of a sufficient tier,
    AllLicensesBusy when every sufficient license is busy, and EventLiveOnLowerTier when the
    event already runs on a license too low for the tier asked for.
    """
    with transaction.atomic():
        account = account_lock(account)
        now = clock.now(account)
        live = EventLease.objects.select_related("license").filter(account=account, event_id=event_id,
                                                                   stopped_at__isnull=True).first()
        if live is not None:
            if not live.license.has_ended:
                if TIER_RANK[live.license.tier] < TIER_RANK[event_tier]:
                    raise EventLiveOnLowerTier(event_id)
                return live, False
            # Its license has expired (expiry ends its leases; this is the belt to those braces):
            # that lease has ended, and the event needs another license.
            live.stopped_at = now
            live.save(update_fields=["stopped_at"])
        sufficient = [tier for tier in pricing.TIERS if TIER_RANK[tier] >= TIER_RANK[event_tier]]
        candidates = License.objects.filter(account=account, tier__in=sufficient).active()
        if not candidates.exists():
            raise LicenseTierNeeded(event_tier)
        # Not exclude(leases__stopped_at__isnull=True): across the reverse relation that is a LEFT JOIN,
        # and a license that never ran an event (no lease row at all) would count as busy.
        live_lease = EventLease.objects.filter(license=OuterRef("pk"), stopped_at__isnull=True)
        free = candidates.exclude(Exists(live_lease)).annotate(
            rank=Case(*(When(tier=tier, then=Value(rank)) for tier, rank in TIER_RANK.items()))
        ).order_by("rank", "period_end", "pk").first()
        if free is None:
            raise AllLicensesBusy(event_id)
        lease = EventLease.objects.create(account=account, license=free, event_id=event_id, event_tier=event_tier,
                                          device_id=device_id, started_at=now)
        return lease, True


def event_stop(*, account: Account, event_id: str) -> EventLease:
    """End an event's lease, freeing its license; EventNotLive when the event is not live."""
    with transaction.atomic():
        account = account_lock(account)
        lease = EventLease.objects.select_related("license").filter(
            account=account, event_id=event_id, stopped_at__isnull=True).first()
        if lease is None:
            raise EventNotLive(event_id)
        lease.stopped_at = clock.now(account)
        lease.save(update_fields=["stopped_at"])
        return lease


def device_licenses(*, account: Account) -> list[dict]:
    """The active licenses a device may start events on, with what they run and whether they are free."""
    busy = dict(EventLease.objects.filter(account=account, stopped_at__isnull=True)
                .values_list("license_id", "event_id"))
    return [
        {"license_id": lic.pk, "tier": lic.tier,
         "runs": [t for t in pricing.TIERS if TIER_RANK[t] <= TIER_RANK[lic.tier]],
         "paid_until": lic.period_end.isoformat(), "cancelling": lic.cancel_at_period_end,
         "live_event_id": busy.get(lic.pk)}
        for lic in License.objects.filter(account=account).active().order_by("pk")
    ]


# --- plan changes that wait for the billing date (upgrades are paid now: billing.changes) ----------------

class ChangeRefused(Exception):
    """This change cannot be made to these licenses now; the message says why, in plain words."""


def change_refusal(lic: License, today) -> str | None:
    """Why no change is accepted on this license today (docs/rules.md), or None."""
    if lic.has_ended:
        return f"License #{lic.pk} has expired; buy a new one instead."
    if lic.cancel_at_period_end:
        return f"License #{lic.pk} is cancelling. Undo the cancellation first."
    if lic.status == License.PAST_DUE:
        return f"License #{lic.pk} is past due. Pay its renewal first."
    if lic.period_end <= today:
        return f"License #{lic.pk} renews today. Change it once it has renewed."
    return None


@transaction.atomic
def license_change_schedule(*, account: Account, license: License, tier: str, period: str) -> License:
    """Schedule a downgrade (a tier or the period going down) for the license's billing date.

    Raises ChangeRefused for a license that cannot change now, or a change that is not a downgrade
    (an upgrade is paid for now, through `license_upgrade`).
    """
    account = account_lock(account)
    lic = License.objects.select_for_update().get(pk=license.pk, account=account)
    if refusal := change_refusal(lic, clock.today(account)):
        raise ChangeRefused(refusal)
    try:
        direction = pricing.change_direction(lic.tier, lic.period, tier, period)
    except pricing.PricingError as error:
        raise ChangeRefused("Choose Basic, Pro or Premium, monthly or annual.") from error
    if direction == pricing.SAME:
        if not lic.change_scheduled:
            raise ChangeRefused(f"License #{lic.pk} is already {pricing.TIER_LABELS[tier]} {period}.")
        tier, period = "", ""  # back to what it is: the scheduled change is undone
    elif direction == pricing.UP:
        raise ChangeRefused(f"Moving license #{lic.pk} to {pricing.TIER_LABELS[tier]} {period} is an upgrade: "
                            "it takes effect now, paid for the rest of the period.")
    lic.next_tier, lic.next_period = tier, period
    lic.save(update_fields=["next_tier", "next_period"])
    return lic


@transaction.atomic
def license_change_undo(*, account: Account, license: License) -> License:
    """Undo a scheduled change: the license renews as it is. Possible until its billing date."""
    account = account_lock(account)
    lic = License.objects.select_for_update().get(pk=license.pk, account=account)
    if lic.has_ended:
        raise ChangeRefused(f"License #{lic.pk} has expired.")
    if not lic.change_scheduled:
        raise ChangeRefused(f"License #{lic.pk} has no change scheduled.")
    lic.next_tier, lic.next_period = "", ""
    lic.save(update_fields=["next_tier", "next_period"])
    return lic
