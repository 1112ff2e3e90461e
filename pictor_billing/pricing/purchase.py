"""Pricing a license purchase: the steps of docs/rules.md, "How a purchase is priced"."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from pictor_billing.money import ZERO, format_usd, to_money
from pictor_billing.pricing.base import (
    ANNUAL,
    MAX_QUANTITY,
    MIN_QUANTITY,
    MONTHLY,
    PERCENT,
    PERIOD_LABELS,
    PERIODS,
    TIER_LABELS,
    TIERS,
    PricingError,
    QuoteLine,
    next_bracket,
    percent,
    volume_rate,
)
from pictor_billing.pricing.calendar import add_years, anchor_date, billing_cycle, shift_month


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
    def choice(self) -> tuple:
        """What the customer chose, for the quote's fingerprint."""
        return ("licenses", self.tier, self.period, self.quantity, self.coupon_code, self.renews_on.isoformat())

    @property
    def credit_balance_after(self) -> Decimal:
        """The credit balance once this purchase is complete."""
        return self.credit_balance + self.volume_adjustment - self.credit_applied


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


def _coupon_capped(coupon: CouponTerms, taken: Decimal) -> bool:
    """A fixed coupon larger than what was left of the order took only that much."""
    return coupon.kind != PERCENT and taken < to_money(coupon.value)


def _coupon_line(coupon: CouponTerms, taken: Decimal) -> str:
    """The coupon's line: "Coupon WELCOME10: 10% off", or "Coupon FLAT50 ($50.00 off, capped at the order)"."""
    if _coupon_capped(coupon, taken):
        return f"Coupon {coupon.code} ({_coupon_words(coupon)}, capped at the order)"
    return f"Coupon {coupon.code}: {_coupon_words(coupon)}"


def _coupon_outcome(coupon: CouponTerms, taken: Decimal) -> str:
    """The summary's note on the coupon, naming what it actually took when that is less than its terms.

    "$50.00 off" beside a $49.00 discount would read as a wrong figure, so a capped coupon says
    "FLAT50: $49.00 off ($50.00 off, capped at the order)".
    """
    if _coupon_capped(coupon, taken):
        return f"{coupon.code}: {format_usd(taken)} off ({_coupon_words(coupon)}, capped at the order)"
    return f"{coupon.code}: {_coupon_words(coupon)}"


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
        renews_on = anchor_date(*shift_month(today.year, today.month, 1), new_anchor)
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
        coupon_message = _coupon_outcome(coupon, coupon_discount)
    else:
        alone = _coupon_amount(coupon, charged_base)
        if alone > bracket_discount:
            volume_discount, coupon_discount, coupon_applied = ZERO, alone, True
            coupon_message = _coupon_outcome(coupon, coupon_discount)
            if bracket_discount:
                coupon_message += f", instead of the {percent(rate)} volume discount (they do not combine)"
        else:
            coupon_message = (
                f"{coupon.code} not applied: the {percent(rate)} volume discount is "
                f"{'larger' if bracket_discount > alone else 'just as large'} and they do not combine"
            )
    if volume_discount:
        lines.append(
            QuoteLine("volume_discount", f"Volume discount {percent(rate)} ({active_after} active licenses)",
                      1, -volume_discount, -volume_discount)
        )
    if coupon_discount:
        lines.append(
            QuoteLine("coupon", _coupon_line(coupon, coupon_discount), 1, -coupon_discount, -coupon_discount)
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
                      f"move{'' if count > 1 else 's'} to {percent(rate)} for the rest of their period",
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
