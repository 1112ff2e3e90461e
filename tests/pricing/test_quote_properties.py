"""Properties of quote_purchase and quote_top_up over random valid inputs (hypothesis).

Random: tier, period, quantity 1-100, 0-30 active licenses (any tier and period, charged at
0%, 10% or 15%, anywhere in their current period), a coupon of any kind and validity or none,
a purchase time in 2024-2030 (leap days and month ends drawn often), a monthly anchor or none,
and a credit balance of 0-2,000.00. Besides invariants, some properties compare figures with an
independent exact (Fraction) computation of the rules in docs/rules.md, and one checks the volume discount
adjustment exhaustively, for every day of every period length at the listed prices.
"""

import calendar
import math
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pictor_billing.pricing import (
    ANNUAL,
    FIXED,
    MONTHLY,
    PERCENT,
    PERIODS,
    TIERS,
    ActiveLicense,
    CouponTerms,
    quote_purchase,
    quote_top_up,
)
from tests.pricing.test_quote_purchase import PRICES

UTC = UTC
D = Decimal
RATES = (D("0"), D("0.10"), D("0.15"))

# No example database: every run draws fresh examples (Hypothesis still keeps a small cache
# in the git-ignored .hypothesis/ folder).
PROPERTY = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# --- Strategies ---------------------------------------------------------------------------------

EDGE_DAYS = [
    date(2024, 1, 1), date(2024, 1, 31), date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1),
    date(2025, 2, 28), date(2025, 3, 31), date(2026, 4, 30), date(2027, 1, 31), date(2027, 12, 31),
    date(2028, 1, 30), date(2028, 2, 29), date(2029, 2, 28), date(2030, 12, 31),
]
days = st.one_of(st.dates(date(2024, 1, 1), date(2030, 12, 31)), st.sampled_from(EDGE_DAYS))
moments = st.builds(lambda day, time: datetime.combine(day, time, tzinfo=UTC), days, st.times())


def money(low, high):
    return st.decimals(low, high, places=2, allow_nan=False, allow_infinity=False)


LENGTHS = {MONTHLY: (28, 29, 30, 31), ANNUAL: (365, 366)}

# Strategies are built once, here: building them inside each draw costs more than the quotes.
LICENSE_CODES = st.lists(st.integers(0, 3 * 2 * 3 * 4 * 366 - 1), max_size=30)
HOURS_FROM_NOW = st.none() | st.integers(-200, 200)
PERCENTS = st.decimals(1, 100, places=1, allow_nan=False, allow_infinity=False)
FIXED_AMOUNTS = money("0.01", "2000.00")
BALANCES = money("0.00", "2000.00")
COUPON_CHOICES = st.sampled_from(("none", "unknown", "coupon", "coupon", "coupon"))
SOME_TIERS, SOME_PERIODS = st.frozensets(st.sampled_from(TIERS)), st.frozensets(st.sampled_from(PERIODS))


def active_licenses(codes, today):
    """Licenses active today, each somewhere inside its current period.

    Each license is drawn as one integer and decoded into its tier, period, rate, period length
    and days elapsed: one draw instead of five keeps 300 examples of up to 30 licenses fast.
    """
    result = []
    for license_id, code in enumerate(codes, start=1):
        code, tier = divmod(code, len(TIERS))
        code, period = divmod(code, len(PERIODS))
        code, rate = divmod(code, len(RATES))
        code, which = divmod(code, 4)
        tier, period = TIERS[tier], PERIODS[period]
        length = LENGTHS[period][which % len(LENGTHS[period])]
        start = today - timedelta(days=code % length)
        result.append(ActiveLicense(
            id=license_id, tier=tier, period=period, list_price=PRICES[(tier, period)],
            discount_rate=RATES[rate], period_start=start, period_end=start + timedelta(days=length),
        ))
    return result


def coupon_for(draw, now):
    """(code typed, terms): no coupon, an unknown code, or a coupon valid or not."""
    choice = draw(COUPON_CHOICES)
    if choice == "none":
        return "", None
    if choice == "unknown":
        return "NOPE", None

    def around_now():
        hours = draw(HOURS_FROM_NOW)
        return None if hours is None else now + timedelta(hours=hours)

    kind = draw(st.sampled_from((PERCENT, FIXED)))
    terms = CouponTerms(
        code="PROMO", kind=kind, value=draw(PERCENTS if kind == PERCENT else FIXED_AMOUNTS),
        combines_with_volume=draw(st.booleans()), starts_at=around_now(), expires_at=around_now(),
        max_redemptions=draw(st.none() | st.integers(1, 5)), times_redeemed=draw(st.integers(0, 5)),
        once_per_account=draw(st.booleans()), used_by_account=draw(st.booleans()),
        tiers=draw(SOME_TIERS), periods=draw(SOME_PERIODS),
    )
    return "PROMO", terms


@st.composite
def purchases(draw):
    now = draw(moments)
    code, terms = coupon_for(draw, now)
    return dict(
        prices=PRICES, tier=draw(st.sampled_from(TIERS)), period=draw(st.sampled_from(PERIODS)),
        quantity=draw(st.integers(1, 100)), active_licenses=active_licenses(draw(LICENSE_CODES), now.date()),
        coupon_code=code, coupon=terms, now=now, anchor_day=draw(st.none() | st.integers(1, 31)),
        credit_balance=draw(BALANCES),
    )


# --- Exact reference (Fraction) for the rules in docs/rules.md ------------------------------------------------

def half_up(value: Fraction) -> Fraction:
    """Round a non-negative exact value half-up to the cent."""
    return Fraction(math.floor(value * 100 + Fraction(1, 2)), 100)


def is_anchor_date(day: date, anchor: int) -> bool:
    return day.day == min(anchor, calendar.monthrange(day.year, day.month)[1])


def reference_cycle(today: date, anchor: int) -> tuple[date, date]:
    """Last anchor date on or before today and the next one after it, found by walking the calendar."""
    start = today
    while not is_anchor_date(start, anchor):
        start -= timedelta(days=1)
    end = today + timedelta(days=1)
    while not is_anchor_date(end, anchor):
        end += timedelta(days=1)
    return start, end


def money_figures(q):
    """Every money amount of a quote (rates excluded), with the lines' figures."""
    amounts = [getattr(q, f.name) for f in fields(q)
               if isinstance(getattr(q, f.name), Decimal) and f.name not in {"volume_rate", "next_bracket_rate"}]
    amounts.append(q.credit_balance_after)
    amounts += [a.amount for a in q.adjustments]
    for line in q.lines:
        amounts += [line.unit_price, line.amount]
    return amounts


# --- quote_purchase -----------------------------------------------------------------------------

@PROPERTY
@given(purchases())
def test_total_due_is_never_negative(purchase):
    q = quote_purchase(**purchase)
    assert q.total_due >= 0
    assert q.credit_balance_after >= 0


@PROPERTY
@given(purchases())
def test_lines_sum_exactly_to_the_total_due(purchase):
    q = quote_purchase(**purchase)
    assert sum((line.amount for line in q.lines), D("0")) == q.total_due


@PROPERTY
@given(purchases())
def test_discounts_stay_within_the_charged_base_which_stays_within_the_list_subtotal(purchase):
    q = quote_purchase(**purchase)
    assert 0 <= q.volume_discount + q.coupon_discount <= q.charged_base <= q.list_subtotal
    assert q.prorata_adjustment <= 0
    assert not (q.volume_discount and q.coupon_applied and not purchase["coupon"].combines_with_volume)


@PROPERTY
@given(purchases())
def test_credit_applied_never_exceeds_the_balance_plus_the_volume_adjustment(purchase):
    q = quote_purchase(**purchase)
    assert 0 <= q.credit_applied <= q.credit_balance + q.volume_adjustment
    left = q.charged_base - q.volume_discount - q.coupon_discount
    # step 6 of the rules-7: all the credit available is used, up to what is left.
    assert q.credit_applied == min(q.credit_balance + q.volume_adjustment, left)
    assert q.total_due == left - q.credit_applied


@PROPERTY
@given(purchases())
def test_every_figure_has_at_most_two_decimals(purchase):
    q = quote_purchase(**purchase)
    for amount in money_figures(q):
        assert amount == amount.quantize(D("0.01")), amount


@PROPERTY
@given(tier=st.sampled_from(TIERS), quantity=st.integers(1, 100), now=moments)
def test_annual_list_subtotal_is_at_most_twelve_monthly_ones(tier, quantity, now):
    def list_subtotal(period):
        return quote_purchase(prices=PRICES, tier=tier, period=period, quantity=quantity,
                              active_licenses=(), now=now, anchor_day=None).list_subtotal
    assert list_subtotal(ANNUAL) <= 12 * list_subtotal(MONTHLY)


@PROPERTY
@given(purchases())
def test_dates_and_pro_rata_match_an_exact_reference(purchase):
    q = quote_purchase(**purchase)
    today, anchor = purchase["now"].date(), purchase["anchor_day"]
    list_subtotal = Fraction(PRICES[(q.tier, q.period)]) * q.quantity
    if q.period == ANNUAL:
        assert q.anchor_day == anchor
        assert q.renews_on.year == today.year + 1 and q.renews_on.month == today.month
        assert q.renews_on.day == today.day or (today.month, today.day, q.renews_on.day) == (2, 29, 28)
        assert q.charged_base == list_subtotal
    elif anchor is None:
        assert q.anchor_day == today.day
        assert q.renews_on == reference_cycle(today, today.day)[1]
        assert q.charged_base == list_subtotal
    else:
        start, end = reference_cycle(today, anchor)
        assert (q.anchor_day, q.renews_on) == (anchor, end)
        share = Fraction(1) if start == today else Fraction((end - today).days, (end - start).days)
        assert q.charged_base == half_up(list_subtotal * share)


@PROPERTY
@given(purchases())
def test_each_volume_adjustment_is_the_exact_credit_rounded_half_up(purchase):
    q = quote_purchase(**purchase)
    today = purchase["now"].date()
    expected = {}
    for lic in purchase["active_licenses"]:
        if lic.discount_rate < q.volume_rate:
            share = Fraction((lic.period_end - today).days, (lic.period_end - lic.period_start).days)
            credit = half_up((Fraction(q.volume_rate) - Fraction(lic.discount_rate)) * Fraction(lic.list_price) * share)
            if credit:
                expected[lic.id] = credit
    assert {a.license_id: Fraction(a.amount) for a in q.adjustments} == expected
    assert q.volume_adjustment == sum(expected.values(), Fraction(0))


def test_volume_adjustment_is_exact_for_every_day_of_every_period_at_spec_prices():
    """Exhaustive rather than random: every tier, period length, old and new rate, days left."""
    today, now = date(2027, 3, 15), datetime(2027, 3, 15, 12, tzinfo=UTC)
    for tier in TIERS:
        for period, lengths in LENGTHS.items():
            price = PRICES[(tier, period)]
            for length in lengths:
                for old_rate, new_rate, batch in ((D("0"), D("0.10"), 4), (D("0"), D("0.15"), 400),
                                                  (D("0.10"), D("0.15"), 400)):
                    days_left = list(range(1, length + 1))
                    for first in range(0, length, batch):
                        chunk = days_left[first:first + batch]
                        active = [ActiveLicense(
                            id=left, tier=tier, period=period, list_price=price, discount_rate=old_rate,
                            period_start=today + timedelta(days=left - length), period_end=today + timedelta(days=left),
                        ) for left in chunk]
                        quantity = 5 - len(chunk) if new_rate == D("0.10") else max(1, 10 - len(chunk))
                        q = quote_purchase(prices=PRICES, tier=tier, period=ANNUAL, quantity=quantity,
                                           active_licenses=active, now=now, anchor_day=None)
                        assert q.volume_rate == new_rate
                        exact = {left: half_up((Fraction(new_rate) - Fraction(old_rate)) * Fraction(price)
                                               * Fraction(left, length)) for left in chunk}
                        got = {a.license_id: Fraction(a.amount) for a in q.adjustments}
                        assert got == exact, (tier, period, length, old_rate, new_rate)


# --- quote_top_up -------------------------------------------------------------------------------

@PROPERTY
@given(price=money("0.01", "1000.00"), tokens=st.integers(1, 100_000), balance=money("0.00", "2000.00"))
def test_top_up_total_is_never_negative_and_its_lines_sum_to_it(price, tokens, balance):
    q = quote_top_up(package_name="Package", tokens=tokens, price=price, credit_balance=balance)
    assert q.total_due >= 0
    assert sum((line.amount for line in q.lines), D("0")) == q.total_due
    assert q.credit_applied == min(balance, price)
    assert q.total_due == price - q.credit_applied
