"""The one pricing service: pure functions from plain values to a frozen Quote.

It imports no app and no ORM. The purchase modal's live Order Summary, the
purchase itself and the invoice all take their figures from `quote_purchase`
(and token top-ups from `quote_top_up`), called with the same inputs, so what
the summary shows is what is charged. The steps follow docs/rules.md, "How a
purchase is priced, step by step"; each step rounds once, half-up, to the cent.

Signs: `prorata_adjustment` is negative (docs/rules.md: "the (negative) difference");
the discounts, the volume adjustment credit and the credit applied are
positive amounts that are taken off. Quote lines carry signed amounts that sum
to `total_due`.
"""

import calendar
import hashlib
import heapq
import json
import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from pictor_billing.money import ZERO, format_usd, to_money

BASIC, PRO, PREMIUM = "basic", "pro", "premium"
TIERS = (BASIC, PRO, PREMIUM)  # lowest first: a tier runs events of its own tier and below
TIER_LABELS = {BASIC: "Basic", PRO: "Pro", PREMIUM: "Premium"}
MONTHLY, ANNUAL = "monthly", "annual"
PERIODS = (MONTHLY, ANNUAL)
PERIOD_LABELS = {MONTHLY: "Monthly", ANNUAL: "Annual"}

MIN_QUANTITY, MAX_QUANTITY = 1, 100

# (lowest active-license count, rate), highest first.
VOLUME_BRACKETS = ((10, Decimal("0.15")), (5, Decimal("0.10")), (1, Decimal("0.00")))

PERCENT, FIXED = "percent", "fixed"


class PricingError(ValueError):
    """The inputs cannot be priced (unknown tier or period, quantity out of range, no price)."""


@dataclass(frozen=True)
class CouponTerms:
    """A coupon as the pricing service needs it, plus the facts that decide its validity."""

    code: str
    kind: str  # PERCENT or FIXED
    value: Decimal  # 1-100 for PERCENT, USD for FIXED
    combines_with_volume: bool
    starts_at: datetime | None = None
    expires_at: datetime | None = None
    max_redemptions: int | None = None
    times_redeemed: int = 0
    once_per_account: bool = False
    used_by_account: bool = False
    tiers: frozenset[str] = frozenset()  # empty: every tier
    periods: frozenset[str] = frozenset()  # empty: every period


@dataclass(frozen=True)
class ActiveLicense:
    """A license already active on the account, for the volume discount adjustment."""

    id: int
    tier: str
    period: str
    list_price: Decimal  # its period's list price when it was last charged
    discount_rate: Decimal  # the volume rate it was last charged at
    period_start: date
    period_end: date  # its next billing date


@dataclass(frozen=True)
class QuoteLine:
    """One line of a quote or invoice; `amount` is signed (credits and discounts negative)."""

    kind: str
    description: str
    quantity: int
    unit_price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class LicenseAdjustment:
    """A volume discount adjustment credited to one already-active license."""

    license_id: int
    old_rate: Decimal
    new_rate: Decimal
    amount: Decimal  # the credit, positive


@dataclass(frozen=True)
class Quote:
    """Every figure of a license purchase, computed once."""

    tier: str
    period: str
    quantity: int
    unit_price: Decimal
    list_subtotal: Decimal
    prorata_adjustment: Decimal  # <= 0
    prorata_days: int | None  # days charged when pro-rated
    cycle_days: int | None
    charged_base: Decimal
    active_before: int
    active_after: int
    volume_rate: Decimal  # the bracket reached after the purchase
    volume_discount: Decimal  # as applied (0 when a non-combinable coupon won)
    bracket_discount: Decimal  # what the bracket alone would give
    coupon_code: str
    coupon_applied: bool
    coupon_discount: Decimal
    coupon_message: str
    volume_adjustment: Decimal  # credit added to the balance, positive
    adjustments: tuple[LicenseAdjustment, ...]
    credit_balance: Decimal  # before this purchase
    credit_applied: Decimal  # step 6 of the rules, includes the volume adjustment
    total_due: Decimal
    renews_on: date
    anchor_day: int | None  # the monthly anchor after the purchase
    next_bracket_gap: int | None  # licenses more that would reach the next bracket
    next_bracket_rate: Decimal | None
    lines: tuple[QuoteLine, ...]

    @property
    def credit_balance_after(self) -> Decimal:
        """The credit balance once this purchase is complete."""
        return self.credit_balance + self.volume_adjustment - self.credit_applied


@dataclass(frozen=True)
class TopUpQuote:
    """Every figure of a token package purchase."""

    package_name: str
    tokens: int
    list_subtotal: Decimal
    credit_balance: Decimal
    credit_applied: Decimal
    total_due: Decimal
    lines: tuple[QuoteLine, ...]


def quote_fingerprint(quote: "Quote | TopUpQuote") -> str:
    """A hash of everything a quote shows: the choice, every line, the credit applied, the total.

    Two quotes with the same fingerprint show the customer the same order, line for line; the
    purchase and top-up forms carry it (signed) so that only the order on screen is ever charged.
    Comparing totals alone would not do: with credit covering both, two different orders total $0.00.
    """
    if isinstance(quote, Quote):
        choice = ["licenses", quote.tier, quote.period, quote.quantity, quote.coupon_code,
                  quote.renews_on.isoformat()]
    else:
        choice = ["tokens", quote.package_name, quote.tokens]
    lines = [[line.kind, line.description, line.quantity, str(line.unit_price), str(line.amount)]
             for line in quote.lines]
    shown = [choice, lines, str(quote.credit_applied), str(quote.total_due)]
    return hashlib.sha256(json.dumps(shown, separators=(",", ":")).encode()).hexdigest()


def volume_rate(active_count: int) -> Decimal:
    """The volume discount rate for this many active licenses (all tiers and periods)."""
    for lowest, rate in VOLUME_BRACKETS:
        if active_count >= lowest:
            return rate
    return ZERO


def next_bracket(active_count: int) -> tuple[int, Decimal] | None:
    """How many more licenses reach the next bracket, and its rate; None at the top."""
    for lowest, rate in reversed(VOLUME_BRACKETS):
        if lowest > active_count and rate > volume_rate(active_count):
            return lowest - active_count, rate
    return None


def anchor_date(year: int, month: int, anchor_day: int) -> date:
    """The anchor date in a month; in short months the last day stands in for 29-31."""
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


def _shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def billing_cycle(today: date, anchor_day: int) -> tuple[date, date]:
    """The monthly cycle containing today: (last anchor date on or before today, next one after)."""
    this_month = anchor_date(today.year, today.month, anchor_day)
    if this_month <= today:
        return this_month, anchor_date(*_shift_month(today.year, today.month, 1), anchor_day)
    return anchor_date(*_shift_month(today.year, today.month, -1), anchor_day), this_month


def add_years(day: date, years: int) -> date:
    """The same calendar date `years` later; Feb 29 becomes Feb 28 in a common year."""
    target = day.year + years
    return date(target, day.month, min(day.day, calendar.monthrange(target, day.month)[1]))


def coupon_problem(coupon: CouponTerms, *, now: datetime, tier: str, period: str) -> str | None:
    """Why this coupon gives no discount on this purchase, in plain words; None when it is valid."""
    code = coupon.code
    if coupon.starts_at is not None and now < coupon.starts_at:
        return f"{code} is not valid until {coupon.starts_at:%b} {coupon.starts_at.day}, {coupon.starts_at.year}"
    if coupon.expires_at is not None and now >= coupon.expires_at:
        return f"{code} has expired"
    if coupon.max_redemptions is not None and coupon.times_redeemed >= coupon.max_redemptions:
        return f"{code} has been fully redeemed"
    if coupon.once_per_account and coupon.used_by_account:
        return f"{code} has already been used on this account"
    if coupon.tiers and tier not in coupon.tiers:
        allowed = ", ".join(TIER_LABELS[t] for t in TIERS if t in coupon.tiers)
        return f"{code} applies only to {allowed} licenses"
    if coupon.periods and period not in coupon.periods:
        allowed = " or ".join(PERIOD_LABELS[p].lower() for p in PERIODS if p in coupon.periods)
        return f"{code} applies only to {allowed} billing"
    return None


def _coupon_amount(coupon: CouponTerms, base: Decimal) -> Decimal:
    if coupon.kind == PERCENT:
        return min(to_money(base * coupon.value / 100), base)
    return min(to_money(coupon.value), base)


def _coupon_words(coupon: CouponTerms) -> str:
    if coupon.kind == PERCENT:
        return f"{coupon.value.normalize():f}% off"
    return f"{format_usd(coupon.value)} off"


def _volume_adjustments(
    licenses: tuple[ActiveLicense, ...] | list[ActiveLicense], new_rate: Decimal, today: date
) -> tuple[LicenseAdjustment, ...]:
    adjustments = []
    for lic in licenses:
        days_left = (lic.period_end - today).days
        days_in_period = (lic.period_end - lic.period_start).days
        if lic.discount_rate >= new_rate or days_left <= 0 or days_in_period <= 0:
            continue
        # Multiply first and divide once: a share such as 1/30 rounded to 28 digits first
        # turns an exact half cent (15% x 149.00 x 1/30 = 0.745) into 0.7449... -> 0.74.
        days_unused = min(days_left, days_in_period)
        amount = to_money((new_rate - lic.discount_rate) * lic.list_price * days_unused / days_in_period)
        if amount > 0:
            adjustments.append(LicenseAdjustment(lic.id, lic.discount_rate, new_rate, amount))
    return tuple(adjustments)


def _check_choice(tier: str, period: str, quantity: int) -> None:
    if tier not in TIERS:
        raise PricingError(f"unknown tier {tier!r}")
    if period not in PERIODS:
        raise PricingError(f"unknown billing period {period!r}")
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise PricingError("quantity must be a whole number")
    if not MIN_QUANTITY <= quantity <= MAX_QUANTITY:
        raise PricingError(f"quantity must be from {MIN_QUANTITY} to {MAX_QUANTITY}")


def _percent(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"


def quote_purchase(
    *,
    prices: dict[tuple[str, str], Decimal],
    tier: str,
    period: str,
    quantity: int,
    active_licenses: tuple[ActiveLicense, ...] | list[ActiveLicense],
    active_count: int | None = None,
    coupon_code: str = "",
    coupon: CouponTerms | None = None,
    now: datetime,
    anchor_day: int | None,
    credit_balance: Decimal = ZERO,
) -> Quote:
    """Price a license purchase, following the rules' steps 1-7.

    `prices` maps (tier, period) to the unit list price in force today;
    `active_count` is how many licenses are active now (cancelling ones
    included; default: len(active_licenses)) and `active_licenses` holds at
    least every active license whose rate is below the bracket reached (the
    others need no adjustment); `coupon_code` is what the customer typed, normalised, and
    `coupon` its terms, or None when no coupon has that code.
    """
    _check_choice(tier, period, quantity)
    credit_balance = max(to_money(credit_balance), ZERO)
    try:
        unit_price = to_money(prices[(tier, period)])
    except KeyError:
        raise PricingError(f"no price for {tier} {period}") from None
    today = now.date()
    label = f"{TIER_LABELS[tier]} license, {PERIOD_LABELS[period].lower()}"

    # 1. List subtotal.
    list_subtotal = to_money(unit_price * quantity)
    lines = [QuoteLine("item", label, quantity, unit_price, list_subtotal)]

    # 2. Pro-rata to the shared monthly anchor; annual licenses renew a year on.
    prorata_adjustment, prorata_days, cycle_days = ZERO, None, None
    if period == ANNUAL:
        renews_on, new_anchor = add_years(today, 1), anchor_day
    elif anchor_day is None:
        new_anchor = today.day
        renews_on = anchor_date(*_shift_month(today.year, today.month, 1), new_anchor)
    else:
        new_anchor = anchor_day
        cycle_start, renews_on = billing_cycle(today, anchor_day)
        if cycle_start != today:
            prorata_days, cycle_days = (renews_on - today).days, (renews_on - cycle_start).days
            charged = to_money(list_subtotal * prorata_days / cycle_days)
            prorata_adjustment = charged - list_subtotal
            lines.append(
                QuoteLine(
                    "prorata",
                    f"Pro-rata: {prorata_days} of {cycle_days} days until {renews_on:%b} {renews_on.day}",
                    1,
                    prorata_adjustment,
                    prorata_adjustment,
                )
            )
    charged_base = list_subtotal + prorata_adjustment

    # 3. Volume bracket after the purchase.
    active_before = len(active_licenses) if active_count is None else active_count
    if active_before < len(active_licenses):
        raise PricingError("active_count cannot be less than the active licenses given")
    active_after = active_before + quantity
    rate = volume_rate(active_after)
    bracket_discount = to_money(charged_base * rate)

    # 4. Coupon, and whether it combines with the volume discount.
    volume_discount, coupon_discount, coupon_applied = bracket_discount, ZERO, False
    if not coupon_code:
        coupon_message = ""
    elif coupon is None:
        coupon_message = f"{coupon_code} is not a valid coupon code"
    elif problem := coupon_problem(coupon, now=now, tier=tier, period=period):
        coupon_message = problem
    elif coupon.combines_with_volume:
        coupon_discount = _coupon_amount(coupon, charged_base - bracket_discount)
        coupon_applied = True
        coupon_message = f"{coupon.code}: {_coupon_words(coupon)}"
    else:
        alone = _coupon_amount(coupon, charged_base)
        if alone > bracket_discount:
            volume_discount, coupon_discount, coupon_applied = ZERO, alone, True
            coupon_message = f"{coupon.code}: {_coupon_words(coupon)}"
            if bracket_discount:
                coupon_message += f", instead of the {_percent(rate)} volume discount (they do not combine)"
        else:
            coupon_message = (
                f"{coupon.code} not applied: the {_percent(rate)} volume discount is "
                f"{'larger' if bracket_discount > alone else 'just as large'} and they do not combine"
            )
    if volume_discount:
        lines.append(
            QuoteLine("volume_discount", f"Volume discount {_percent(rate)} ({active_after} active licenses)",
                      1, -volume_discount, -volume_discount)
        )
    if coupon_discount:
        lines.append(
            QuoteLine("coupon", f"Coupon {coupon.code}: {_coupon_words(coupon)}", 1, -coupon_discount, -coupon_discount)
        )
    left = charged_base - volume_discount - coupon_discount

    # 5. Volume discount adjustment for licenses already active, as a credit.
    adjustments = _volume_adjustments(active_licenses, rate, today)
    volume_adjustment = sum((a.amount for a in adjustments), ZERO)
    if adjustments:
        # One line for every license moved (each credit rounded on its own, then summed): 500 active
        # licenses make one line, and the summary, invoice and PDF all read the same figure.
        count = len(adjustments)
        lines.append(
            QuoteLine("volume_adjustment",
                      f"Volume discount adjustment: {count} active license{'s' if count > 1 else ''} "
                      f"move{'' if count > 1 else 's'} to {_percent(rate)} for the rest of their period",
                      1, -volume_adjustment, -volume_adjustment)
        )

    # 6. Credit applied, the adjustment first; 7. what is left is due.
    adjustment_used = min(volume_adjustment, left)
    if volume_adjustment > adjustment_used:
        carried = volume_adjustment - adjustment_used
        lines.append(QuoteLine("credit_carried", "Unused credit added to your credit balance", 1, carried, carried))
    balance_used = min(credit_balance, left - adjustment_used)
    if balance_used:
        lines.append(QuoteLine("credit_applied", "Credit balance applied", 1, -balance_used, -balance_used))
    credit_applied = adjustment_used + balance_used
    total_due = left - credit_applied

    gap = next_bracket(active_after)
    return Quote(
        tier=tier, period=period, quantity=quantity, unit_price=unit_price,
        list_subtotal=list_subtotal, prorata_adjustment=prorata_adjustment,
        prorata_days=prorata_days, cycle_days=cycle_days, charged_base=charged_base,
        active_before=active_before, active_after=active_after, volume_rate=rate,
        volume_discount=volume_discount, bracket_discount=bracket_discount,
        coupon_code=coupon_code, coupon_applied=coupon_applied,
        coupon_discount=coupon_discount, coupon_message=coupon_message,
        volume_adjustment=volume_adjustment, adjustments=adjustments,
        credit_balance=credit_balance, credit_applied=credit_applied, total_due=total_due,
        renews_on=renews_on, anchor_day=new_anchor if period == MONTHLY else anchor_day,
        next_bracket_gap=gap[0] if gap else None, next_bracket_rate=gap[1] if gap else None,
        lines=tuple(lines),
    )


@dataclass(frozen=True)
class PackageOffer:
    """A token package as the pricing service needs it."""

    id: int
    name: str
    tokens: int
    price: Decimal


def quote_top_up(*, package_name: str, tokens: int, price: Decimal, credit_balance: Decimal = ZERO) -> TopUpQuote:
    """Price one token package: its list price, less any credit balance (never below $0.00)."""
    return quote_top_up_mix(items=[(PackageOffer(0, package_name, tokens, price), 1)], credit_balance=credit_balance)


def quote_top_up_mix(
    *, items: list[tuple[PackageOffer, int]] | tuple[tuple[PackageOffer, int], ...], credit_balance: Decimal = ZERO
) -> TopUpQuote:
    """Price one purchase of several packages (count of each); the credit balance applies first."""
    credit_balance = max(to_money(credit_balance), ZERO)
    items = [(offer, count) for offer, count in items if count]
    if not items:
        raise PricingError("a top-up needs at least one package")
    lines = []
    for offer, count in items:
        price = to_money(offer.price)
        if price <= 0 or offer.tokens <= 0 or count < 0:
            raise PricingError("a token package needs a positive price and token count")
        lines.append(QuoteLine("item", f"{offer.name}: {offer.tokens:,} tokens", count, price, price * count))
    list_subtotal = sum((line.amount for line in lines), ZERO)
    credit_applied = min(credit_balance, list_subtotal)
    if credit_applied:
        lines.append(QuoteLine("credit_applied", "Credit balance applied", 1, -credit_applied, -credit_applied))
    return TopUpQuote(
        package_name=", ".join(f"{count} × {offer.name}" if count > 1 else offer.name for offer, count in items),
        tokens=sum(offer.tokens * count for offer, count in items), list_subtotal=list_subtotal,
        credit_balance=credit_balance, credit_applied=credit_applied,
        total_due=list_subtotal - credit_applied, lines=tuple(lines),
    )


# Above this many (units × packages) steps the exact table gives way to the residue search.
_MIX_TABLE_LIMIT = 400_000


def cheapest_package_mix(packages: list[PackageOffer], tokens_needed: int) -> tuple[tuple[PackageOffer, int], ...]:
    """The cheapest packages (with counts) that together give at least `tokens_needed` tokens.

    Small needs are solved exactly by a table over token amounts (in units of
    the packages' common divisor). Large needs use the best-value package for
    the bulk: any mix's other packages are searched by residue modulo the best
    package's size (a shortest-path search over at most that many states), and
    the bulk tops each candidate up; that is exact whenever the other packages
    stay within the need, which they do for needs this large.
    """
    packages = sorted((p for p in packages if p.tokens > 0 and p.price > 0), key=lambda p: (p.tokens, p.id))
    if tokens_needed <= 0 or not packages:
        return ()
    unit = math.gcd(*(p.tokens for p in packages))
    sizes = {p.id: p.tokens // unit for p in packages}
    needed = -(-tokens_needed // unit)
    by_id = {p.id: p for p in packages}
    if needed * len(packages) <= _MIX_TABLE_LIMIT:
        counts = _mix_by_table(packages, sizes, needed)
    else:
        counts = _mix_by_residues(packages, sizes, needed)
    return tuple((by_id[pid], count) for pid, count in sorted(counts.items(), key=lambda kv: by_id[kv[0]].tokens))


def _mix_by_table(packages, sizes, needed) -> dict[int, int]:
    cost: list[Decimal] = [ZERO] + [Decimal("Infinity")] * needed
    choice: list[PackageOffer | None] = [None] * (needed + 1)
    for amount in range(1, needed + 1):
        for p in packages:
            candidate = p.price + cost[max(0, amount - sizes[p.id])]
            if candidate < cost[amount]:
                cost[amount], choice[amount] = candidate, p
    counts: dict[int, int] = {}
    while needed > 0:
        p = choice[needed]
        counts[p.id] = counts.get(p.id, 0) + 1
        needed -= sizes[p.id]
    return counts


def _mix_by_residues(packages, sizes, needed) -> dict[int, int]:
    best = min(packages, key=lambda p: (p.price / p.tokens, -p.tokens))
    size = sizes[best.id]
    others = [p for p in packages if p.id != best.id]
    # Dijkstra over residues modulo the best size; a path's cost is the price of
    # the other packages beyond what the same tokens would cost in best value.
    excess = {p.id: p.price - best.price * sizes[p.id] / size for p in others}
    price_of = {p.id: p.price for p in others}
    # Each residue keeps its cheapest (excess, units, price) and a parent pointer, so
    # memory grows with the best package's size, not its square.
    found: dict[int, tuple[Decimal, int, Decimal, int | None, int | None]] = {}
    queue = [(ZERO, 0, ZERO, 0, None, None)]  # (excess, units, price, residue, parent residue, package id)
    while queue:
        spent, units, paid, residue, parent, package_id = heapq.heappop(queue)
        if residue in found:
            continue
        found[residue] = (spent, units, paid, parent, package_id)
        for p in others:
            after = (residue + sizes[p.id]) % size
            if after not in found:
                heapq.heappush(queue, (spent + excess[p.id], units + sizes[p.id], paid + price_of[p.id],
                                       after, residue, p.id))
    options = []
    for residue, (_, units, paid, _, _) in found.items():
        if units > needed:
            continue
        bulk = -(-(needed - units) // size)
        options.append((paid + best.price * bulk, units + bulk * size, residue, bulk))
    price, _, residue, bulk = min(options)
    path = []
    while found[residue][4] is not None:
        path.append(found[residue][4])
        residue = found[residue][3]
    counts: dict[int, int] = {best.id: bulk} if bulk else {}
    for pid in path:
        counts[pid] = counts.get(pid, 0) + 1
    return counts
