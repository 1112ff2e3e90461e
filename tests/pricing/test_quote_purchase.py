"""quote_purchase: every step of docs/rules.md's "How a purchase is priced", as tables of hand-computed cases.

Every expected figure below was worked out by hand from docs/rules.md (the arithmetic is in the
comments) and is written as a Decimal string; none is computed by the code under test.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from pictor_billing.pricing import (
    ANNUAL,
    BASIC,
    FIXED,
    MONTHLY,
    PERCENT,
    PREMIUM,
    PRO,
    ActiveLicense,
    CouponTerms,
    PricingError,
    quote_purchase,
)

UTC = UTC
D = Decimal

# docs/rules.md, "Licenses, tiers and prices (USD)". Shared by every pricing test module.
PRICES = {
    (BASIC, MONTHLY): D("49.00"),
    (BASIC, ANNUAL): D("490.00"),
    (PRO, MONTHLY): D("99.00"),
    (PRO, ANNUAL): D("990.00"),
    (PREMIUM, MONTHLY): D("149.00"),
    (PREMIUM, ANNUAL): D("1490.00"),
}


@pytest.fixture
def list_prices():
    """The price list of docs/rules.md, a fresh copy per test (a test may change a price).

    Not named `prices`: tests/conftest.py has a `prices` fixture that seeds the database.
    """
    return dict(PRICES)


def at(year, month, day, hour=12):
    """A timezone-aware UTC purchase time."""
    return datetime(year, month, day, hour, tzinfo=UTC)


def licenses(count, *, start, end, tier=BASIC, period=MONTHLY, rate="0", first_id=1):
    """`count` active licenses of one kind, each charged at `rate` for the period start..end."""
    return [
        ActiveLicense(
            id=first_id + n, tier=tier, period=period, list_price=PRICES[(tier, period)],
            discount_rate=D(rate), period_start=start, period_end=end,
        )
        for n in range(count)
    ]


def coupon(kind=PERCENT, value="20", combines=True, code="SAVE", **terms):
    return CouponTerms(code=code, kind=kind, value=D(value), combines_with_volume=combines, **terms)


def quote(list_prices, **choice):
    """Quote a purchase; by default one Basic monthly license on the account's anchor date."""
    args = {
        "tier": BASIC, "period": MONTHLY, "quantity": 1, "active_licenses": (),
        "now": at(2027, 3, 15), "anchor_day": 15,
    }
    args.update(choice)
    return quote_purchase(prices=list_prices, **args)


RATES = {"volume_rate", "next_bracket_rate"}  # not money: not held to two decimals


def check(q, **expected):
    """Compare the quote's fields with the expected figures (strings become Decimals); report all."""
    wrong = {}
    for field, want in expected.items():
        got = getattr(q, field)
        if isinstance(got, Decimal) and isinstance(want, str):
            want = D(want)
        if got != want or (isinstance(got, Decimal) and got.as_tuple().exponent != -2 and field not in RATES):
            wrong[field] = (got, want)
    assert not wrong, "field: (got, expected) " + repr(wrong)
    assert sum((line.amount for line in q.lines), D("0")) == q.total_due, q.lines


def lines_of(q, kind):
    return [line for line in q.lines if line.kind == kind]


# --- Volume brackets --------------------------------------------------------------------------
#
# A Basic monthly purchase (49.00 each) on the account's anchor date (Mar 15 2027, anchor 15),
# so there is no pro-rata. The licenses already active are Basic monthly, renewed today
# (Mar 15 -> Apr 15, 31 of 31 days left), so a bracket reached today credits each of them
# the full (new rate - its rate) x 49.00: 0 -> 10% = 4.90, 10% -> 15% = 2.45, 0 -> 15% = 7.35.

TODAY_PERIOD = {"start": date(2027, 3, 15), "end": date(2027, 4, 15)}

BRACKETS = [
    # active before (count, rate), quantity, expected
    pytest.param(0, "0", 1, dict(
        active_after=1, volume_rate="0.00", list_subtotal="49.00", volume_discount="0.00",
        volume_adjustment="0.00", credit_applied="0.00", total_due="49.00",
        next_bracket_gap=4, next_bracket_rate="0.10"),
        id="no licenses + buy 1 -> no discount, 4 more reach 10%"),
    pytest.param(0, "0", 4, dict(
        active_after=4, volume_rate="0.00", list_subtotal="196.00", volume_discount="0.00",
        total_due="196.00", next_bracket_gap=1, next_bracket_rate="0.10"),
        id="no licenses + buy 4 -> still no discount, 1 more reaches 10%"),
    pytest.param(0, "0", 5, dict(  # 245.00 x 10% = 24.50
        active_after=5, volume_rate="0.10", list_subtotal="245.00", volume_discount="24.50",
        total_due="220.50", next_bracket_gap=5, next_bracket_rate="0.15"),
        id="no licenses + buy 5 -> 10%"),
    pytest.param(3, "0", 1, dict(
        active_after=4, volume_rate="0.00", volume_discount="0.00", volume_adjustment="0.00",
        total_due="49.00", next_bracket_gap=1, next_bracket_rate="0.10"),
        id="3 active + buy 1 = 4 -> no discount"),
    pytest.param(3, "0", 2, dict(  # 98.00 - 9.80 = 88.20; credit 3 x 4.90 = 14.70; 88.20 - 14.70
        active_before=3, active_after=5, volume_rate="0.10", list_subtotal="98.00",
        volume_discount="9.80", volume_adjustment="14.70", credit_applied="14.70",
        total_due="73.50", next_bracket_gap=5, next_bracket_rate="0.15"),
        id="3 active + buy 2 = 5 -> 10%, the 3 get their credit"),
    pytest.param(4, "0", 1, dict(  # 49.00 - 4.90 = 44.10; credit 4 x 4.90 = 19.60; 44.10 - 19.60
        active_after=5, volume_rate="0.10", volume_discount="4.90", volume_adjustment="19.60",
        credit_applied="19.60", total_due="24.50", next_bracket_gap=5, next_bracket_rate="0.15"),
        id="4 active + buy 1 = 5 -> 10%"),
    pytest.param(8, "0.10", 1, dict(  # 49.00 - 4.90; the 8 are already at 10%
        active_after=9, volume_rate="0.10", volume_discount="4.90", volume_adjustment="0.00",
        credit_applied="0.00", total_due="44.10", next_bracket_gap=1, next_bracket_rate="0.15"),
        id="8 active + buy 1 = 9 -> still 10%, 1 more reaches 15%"),
    pytest.param(9, "0.10", 1, dict(  # 49.00 - 7.35 = 41.65; credit 9 x 2.45 = 22.05; 41.65 - 22.05
        active_after=10, volume_rate="0.15", volume_discount="7.35", volume_adjustment="22.05",
        credit_applied="22.05", total_due="19.60", next_bracket_gap=None, next_bracket_rate=None),
        id="9 active + buy 1 = 10 -> 15%, the 9 go from 10% to 15%"),
    pytest.param(9, "0.10", 2, dict(  # 98.00 - 14.70 = 83.30; - 22.05
        active_after=11, volume_rate="0.15", volume_discount="14.70", volume_adjustment="22.05",
        total_due="61.25", next_bracket_gap=None),
        id="9 active + buy 2 = 11 -> 15%"),
    pytest.param(4, "0", 6, dict(  # 294.00 - 44.10 = 249.90; credit 4 x 7.35 = 29.40; 249.90 - 29.40
        active_after=10, volume_rate="0.15", list_subtotal="294.00", volume_discount="44.10",
        volume_adjustment="29.40", total_due="220.50", next_bracket_gap=None),
        id="4 active + buy 6 = 10 -> 15%, the 4 jump from none to 15%"),
    pytest.param(0, "0", 9, dict(  # 441.00 - 44.10
        active_after=9, volume_rate="0.10", volume_discount="44.10", total_due="396.90",
        next_bracket_gap=1, next_bracket_rate="0.15"),
        id="no licenses + buy 9 -> 10%"),
    pytest.param(0, "0", 10, dict(  # 490.00 - 73.50
        active_after=10, volume_rate="0.15", volume_discount="73.50", total_due="416.50",
        next_bracket_gap=None, next_bracket_rate=None),
        id="no licenses + buy 10 -> 15%"),
    pytest.param(10, "0.15", 1, dict(  # 49.00 - 7.35; the 10 are already at 15%
        active_after=11, volume_rate="0.15", volume_discount="7.35", volume_adjustment="0.00",
        total_due="41.65", next_bracket_gap=None),
        id="10 active + buy 1 -> still 15%, no adjustment"),
    pytest.param(30, "0.15", 1, dict(
        active_after=31, volume_rate="0.15", volume_discount="7.35", total_due="41.65"),
        id="30 active + buy 1 -> 15%"),
    pytest.param(0, "0", 100, dict(  # 4,900.00 x 15% = 735.00
        active_after=100, list_subtotal="4900.00", volume_discount="735.00", total_due="4165.00"),
        id="no licenses + buy 100 (the most) -> 15%"),
]


@pytest.mark.parametrize(("active_count", "active_rate", "quantity", "expected"), BRACKETS)
def test_volume_bracket_is_set_by_the_active_count_after_the_purchase(
    list_prices, active_count, active_rate, quantity, expected
):
    active = licenses(active_count, rate=active_rate, **TODAY_PERIOD)
    q = quote(list_prices, quantity=quantity, active_licenses=active)
    check(q, **expected)


def test_four_active_plus_one_reaches_ten_percent(list_prices):
    q = quote(list_prices, active_licenses=licenses(4, **TODAY_PERIOD))
    assert q.volume_rate == D("0.10")
    assert q.volume_discount == D("4.90")
    [line] = lines_of(q, "volume_discount")
    assert line.amount == D("-4.90")
    assert line.description == "Volume discount 10% (5 active licenses)"


def test_nine_active_plus_one_reaches_fifteen_percent(list_prices):
    q = quote(list_prices, active_licenses=licenses(9, rate="0.10", **TODAY_PERIOD))
    assert (q.volume_rate, q.volume_discount, q.next_bracket_gap) == (D("0.15"), D("7.35"), None)


def test_active_licenses_of_every_tier_and_period_count_and_are_credited_at_their_own_price(list_prices):
    # Mar 20 2027, anchor 15: a Basic monthly license is pro-rated 26 of 31 days
    # (Mar 15 -> Apr 15): 49.00 x 26/31 = 41.0967... -> 41.10, adjustment -7.90.
    # 4 active + 1 = 5 -> 10%: 41.10 x 10% = 4.11; left 36.99.
    premium_annual = licenses(1, tier=PREMIUM, period=ANNUAL, start=date(2026, 7, 1), end=date(2027, 7, 1))
    pro_monthly = licenses(1, tier=PRO, start=date(2027, 3, 15), end=date(2027, 4, 15), first_id=2)
    basic_annual = licenses(1, period=ANNUAL, start=date(2026, 12, 1), end=date(2027, 12, 1), first_id=3)
    basic_monthly_at_ten = licenses(1, rate="0.10", start=date(2027, 3, 15), end=date(2027, 4, 15), first_id=4)
    q = quote(list_prices, now=at(2027, 3, 20),
              active_licenses=premium_annual + pro_monthly + basic_annual + basic_monthly_at_ten)
    # Credits: 10% x 1490.00 x 103/365 = 42.0465... -> 42.05 (Mar 20 -> Jul 1 2027 is 103 days)
    #          10% x   99.00 x  26/31  =  8.3032... ->  8.30
    #          10% x  490.00 x 256/365 = 34.3671... -> 34.37 (Mar 20 -> Dec 1 2027 is 256 days)
    #          the Basic monthly license already charged at 10% gets nothing.
    # Total 84.72; 36.99 of it pays this purchase, 47.73 stays in the balance.
    check(q, active_after=5, volume_rate="0.10", charged_base="41.10", prorata_adjustment="-7.90",
          volume_discount="4.11", volume_adjustment="84.72", credit_applied="36.99", total_due="0.00",
          credit_balance_after="47.73")
    assert {a.license_id: a.amount for a in q.adjustments} == {1: D("42.05"), 2: D("8.30"), 3: D("34.37")}
    assert all((a.old_rate, a.new_rate) == (D("0"), D("0.10")) for a in q.adjustments)
    assert [line.amount for line in lines_of(q, "credit_carried")] == [D("47.73")]


# --- Volume discount adjustment: rounded half-up per license ------------------------------------

ADJUSTMENT_ROUNDING = [
    # Mar 12 2027, anchor 15: cycle Feb 15 -> Mar 15 (28 days), 3 left. 4 Basic monthly licenses
    # at 0% + buy 1 -> 10%. Each credit: 10% x 49.00 x 3/28 = 0.525 exactly -> 0.53; 4 x 0.53 = 2.12.
    # The purchase: 49.00 x 3/28 = 5.25; 10% = 0.525 -> 0.53; left 4.72; 4.72 - 2.12 = 2.60.
    pytest.param(at(2027, 3, 12), date(2027, 2, 15), date(2027, 3, 15), BASIC, "0", 4, BASIC, 1, dict(
        charged_base="5.25", volume_discount="0.53", volume_adjustment="2.12", total_due="2.60"),
        "0.53", id="0 -> 10% on 3 of 28 days: 0.525 rounds up to 0.53"),
    # May 14 2027, anchor 15: cycle Apr 15 -> May 15 (30 days), 1 left. 4 Premium monthly at 0%
    # + buy 6 Basic -> 10 -> 15%. Each credit: 15% x 149.00 x 1/30 = 0.745 exactly -> 0.75; x4 = 3.00.
    # The purchase: 294.00 x 1/30 = 9.80; 15% = 1.47; left 8.33; 8.33 - 3.00 = 5.33.
    pytest.param(at(2027, 5, 14), date(2027, 4, 15), date(2027, 5, 15), PREMIUM, "0", 4, BASIC, 6, dict(
        charged_base="9.80", volume_discount="1.47", volume_adjustment="3.00", total_due="5.33"),
        "0.75", id="0 -> 15% on 1 of 30 days: 0.745 rounds up to 0.75"),
    # Same day, 9 Pro monthly at 10% + buy 1 Pro -> 15%. Each: 5% x 99.00 x 1/30 = 0.165 -> 0.17;
    # x9 = 1.53. The purchase: 99.00 x 1/30 = 3.30; 15% = 0.495 -> 0.50; left 2.80; - 1.53 = 1.27.
    pytest.param(at(2027, 5, 14), date(2027, 4, 15), date(2027, 5, 15), PRO, "0.10", 9, PRO, 1, dict(
        charged_base="3.30", volume_discount="0.50", volume_adjustment="1.53", total_due="1.27"),
        "0.17", id="10% -> 15% on 1 of 30 days: 0.165 rounds up to 0.17"),
]


@pytest.mark.parametrize(
    ("now", "start", "end", "active_tier", "active_rate", "active_count", "tier", "quantity", "expected", "each"),
    ADJUSTMENT_ROUNDING,
)
def test_volume_adjustment_is_rounded_half_up_per_license(
    list_prices, now, start, end, active_tier, active_rate, active_count, tier, quantity, expected, each
):
    active = licenses(active_count, tier=active_tier, rate=active_rate, start=start, end=end)
    q = quote(list_prices, tier=tier, quantity=quantity, now=now, active_licenses=active)
    check(q, **expected)
    assert [a.amount for a in q.adjustments] == [D(each)] * active_count
    [line] = lines_of(q, "volume_adjustment")  # one line for them all, each license rounded on its own
    assert (line.quantity, line.unit_price, line.amount) == (1, -D(each) * active_count, -D(each) * active_count)


def test_licenses_already_at_the_new_rate_get_no_adjustment(list_prices):
    at_ten = licenses(4, rate="0.10", **TODAY_PERIOD)
    at_fifteen = licenses(2, rate="0.15", first_id=10, **TODAY_PERIOD)
    q = quote(list_prices, active_licenses=at_ten + at_fifteen)  # 6 + 1 = 7 -> 10%
    check(q, volume_rate="0.10", volume_adjustment="0.00", credit_applied="0.00", total_due="44.10")
    assert q.adjustments == ()
    assert lines_of(q, "volume_adjustment") == []


def test_only_licenses_below_the_new_rate_are_credited(list_prices):
    # 5 at 15% and 4 at 10% + buy 1 -> 10 -> 15%: only the four at 10% get 5% x 49.00 = 2.45.
    q = quote(list_prices, active_licenses=licenses(5, rate="0.15", **TODAY_PERIOD)
              + licenses(4, rate="0.10", first_id=6, **TODAY_PERIOD))
    check(q, volume_rate="0.15", volume_adjustment="9.80", total_due="31.85")  # 41.65 - 9.80
    assert sorted(a.license_id for a in q.adjustments) == [6, 7, 8, 9]


def test_an_active_count_with_only_the_licenses_below_the_bracket_prices_the_same(list_prices):
    # The service passes the count and only the licenses that could be credited.
    at_top = licenses(5, rate="0.15", **TODAY_PERIOD)
    below = licenses(4, rate="0.10", first_id=6, **TODAY_PERIOD)
    everything = quote(list_prices, active_licenses=at_top + below)
    assert quote(list_prices, active_licenses=below, active_count=9) == everything


def test_an_active_count_below_the_licenses_given_is_refused(list_prices):
    with pytest.raises(PricingError):
        quote(list_prices, active_licenses=licenses(3, **TODAY_PERIOD), active_count=2)


def test_unused_volume_adjustment_is_carried_to_the_credit_balance(list_prices):
    # 9 Premium annual licenses at 10%, renewed today (Mar 15 2027 -> Mar 15 2028, 366 of 366
    # days left): each is credited 5% x 1490.00 = 74.50, 670.50 in all. Buying 1 Basic monthly
    # -> 10 -> 15%: 49.00 - 7.35 = 41.65 is all the credit can pay; 628.85 is carried.
    # The 100.00 already in the balance is not touched.
    active = licenses(9, tier=PREMIUM, period=ANNUAL, rate="0.10", start=date(2027, 3, 15), end=date(2028, 3, 15))
    q = quote(list_prices, active_licenses=active, credit_balance=D("100.00"))
    check(q, volume_adjustment="670.50", credit_balance="100.00", credit_applied="41.65",
          total_due="0.00", credit_balance_after="728.85")
    assert [(line.kind, line.amount) for line in q.lines] == [
        ("item", D("49.00")),
        ("volume_discount", D("-7.35")),
        ("volume_adjustment", D("-670.50")),
        ("credit_carried", D("628.85")),
    ]


# --- List prices --------------------------------------------------------------------------------

LIST_PRICES = [
    pytest.param(BASIC, MONTHLY, 1, "49.00", "49.00", "Basic license, monthly", id="Basic monthly"),
    pytest.param(BASIC, ANNUAL, 1, "490.00", "490.00", "Basic license, annual", id="Basic annual"),
    pytest.param(PRO, MONTHLY, 1, "99.00", "99.00", "Pro license, monthly", id="Pro monthly"),
    pytest.param(PRO, ANNUAL, 1, "990.00", "990.00", "Pro license, annual", id="Pro annual"),
    pytest.param(PREMIUM, MONTHLY, 1, "149.00", "149.00", "Premium license, monthly", id="Premium monthly"),
    pytest.param(PREMIUM, ANNUAL, 1, "1490.00", "1490.00", "Premium license, annual", id="Premium annual"),
    pytest.param(PRO, ANNUAL, 3, "990.00", "2970.00", "Pro license, annual", id="3 Pro annual"),
    pytest.param(PREMIUM, MONTHLY, 4, "149.00", "596.00", "Premium license, monthly", id="4 Premium monthly"),
]


@pytest.mark.parametrize(("tier", "period", "quantity", "unit", "subtotal", "description"), LIST_PRICES)
def test_list_subtotal_is_the_period_price_times_quantity(
    list_prices, tier, period, quantity, unit, subtotal, description
):
    q = quote(list_prices, tier=tier, period=period, quantity=quantity)
    check(q, unit_price=unit, list_subtotal=subtotal, charged_base=subtotal, total_due=subtotal)
    assert q.lines[0].kind == "item"
    assert (q.lines[0].description, q.lines[0].quantity, q.lines[0].unit_price) == (description, quantity, D(unit))


def test_prices_come_from_the_data_passed_in(list_prices):
    list_prices[(PRO, MONTHLY)] = D("109.00")
    assert quote(list_prices, tier=PRO, quantity=2).list_subtotal == D("218.00")


# --- Coupons ------------------------------------------------------------------------------------
#
# 5 Pro monthly licenses on the anchor date, none active before: list 495.00, 5 active -> 10%
# volume discount 49.50, 445.50 left before the coupon.

INSTEAD = ", instead of the 10% volume discount (they do not combine)"
NOT_APPLIED = "SAVE not applied: the 10% volume discount is larger and they do not combine"
TIED = "SAVE not applied: the 10% volume discount is just as large and they do not combine"

COUPONS = [
    pytest.param(coupon(PERCENT, "20"), 5, dict(  # 20% x 445.50 = 89.10
        volume_discount="49.50", coupon_discount="89.10", coupon_applied=True, total_due="356.40",
        coupon_message="SAVE: 20% off"), id="combinable 20% takes its share after the volume discount"),
    pytest.param(coupon(FIXED, "50.00"), 5, dict(
        volume_discount="49.50", coupon_discount="50.00", coupon_applied=True, total_due="395.50",
        coupon_message="SAVE: $50.00 off"), id="combinable fixed $50 comes off after the volume discount"),
    pytest.param(coupon(PERCENT, "12.5"), 5, dict(  # 12.5% x 445.50 = 55.6875 -> 55.69
        coupon_discount="55.69", total_due="389.81", coupon_message="SAVE: 12.5% off"),
        id="combinable 12.5% is rounded half-up"),
    pytest.param(coupon(PERCENT, "25", combines=False), 5, dict(  # 25% x 495.00 = 123.75 > 49.50
        volume_discount="0.00", bracket_discount="49.50", coupon_discount="123.75", coupon_applied=True,
        total_due="371.25", coupon_message="SAVE: 25% off" + INSTEAD),
        id="non-combinable 25% beats the 10% volume discount and replaces it"),
    pytest.param(coupon(FIXED, "60.00", combines=False), 5, dict(
        volume_discount="0.00", coupon_discount="60.00", coupon_applied=True, total_due="435.00",
        coupon_message="SAVE: $60.00 off" + INSTEAD),
        id="non-combinable fixed $60 beats the 49.50 volume discount"),
    pytest.param(coupon(PERCENT, "5", combines=False), 5, dict(  # 24.75 < 49.50
        volume_discount="49.50", coupon_discount="0.00", coupon_applied=False, total_due="445.50",
        coupon_message=NOT_APPLIED), id="non-combinable 5% loses to the volume discount"),
    pytest.param(coupon(PERCENT, "10", combines=False), 5, dict(  # 49.50 == 49.50
        volume_discount="49.50", coupon_discount="0.00", coupon_applied=False, total_due="445.50",
        coupon_message=TIED), id="non-combinable 10% ties: the volume discount is kept"),
    pytest.param(coupon(FIXED, "49.50", combines=False), 5, dict(
        volume_discount="49.50", coupon_discount="0.00", coupon_applied=False, total_due="445.50",
        coupon_message=TIED), id="non-combinable fixed $49.50 ties: the volume discount is kept"),
    pytest.param(coupon(PERCENT, "20", combines=False), 1, dict(  # no bracket: 20% x 99.00 = 19.80
        volume_discount="0.00", bracket_discount="0.00", coupon_discount="19.80", coupon_applied=True,
        total_due="79.20", coupon_message="SAVE: 20% off"),
        id="non-combinable coupon without a volume bracket simply applies"),
    pytest.param(coupon(FIXED, "500.00"), 5, dict(
        volume_discount="49.50", coupon_discount="445.50", coupon_applied=True, total_due="0.00",
        coupon_message="SAVE: $445.50 off ($500.00 off, capped at the order)"),
        id="fixed coupon larger than what is left is capped at it, and says what it took"),
    pytest.param(coupon(FIXED, "1000.00", combines=False), 5, dict(
        volume_discount="0.00", coupon_discount="495.00", total_due="0.00",
        coupon_message="SAVE: $495.00 off ($1,000.00 off, capped at the order)" + INSTEAD),
        id="non-combinable fixed coupon larger than the charged base is capped at it"),
    pytest.param(coupon(FIXED, "150.00"), 1, dict(
        coupon_discount="99.00", total_due="0.00"), id="fixed $150 on a single 99.00 license leaves 0.00"),
    pytest.param(coupon(PERCENT, "100"), 5, dict(
        volume_discount="49.50", coupon_discount="445.50", total_due="0.00", coupon_message="SAVE: 100% off"),
        id="100% combinable coupon makes it free"),
    pytest.param(coupon(PERCENT, "100", combines=False), 5, dict(
        volume_discount="0.00", coupon_discount="495.00", total_due="0.00"),
        id="100% non-combinable coupon makes it free"),
]


@pytest.mark.parametrize(("terms", "quantity", "expected"), COUPONS)
def test_coupon_discount(list_prices, terms, quantity, expected):
    q = quote(list_prices, tier=PRO, quantity=quantity, coupon_code="SAVE", coupon=terms)
    check(q, **expected)
    coupon_lines = lines_of(q, "coupon")
    if q.coupon_applied:
        [line] = coupon_lines
        assert line.amount == -q.coupon_discount
        assert line.description.startswith("Coupon SAVE")
    else:
        assert coupon_lines == []
    assert bool(lines_of(q, "volume_discount")) == (q.volume_discount > 0)


COUPON_LINES = [
    pytest.param(coupon(FIXED, "50.00"), 1, "Coupon SAVE: $50.00 off", "-50.00", id="fixed, less than the order"),
    pytest.param(coupon(FIXED, "99.00"), 1, "Coupon SAVE: $99.00 off", "-99.00", id="fixed, exactly the order"),
    pytest.param(coupon(FIXED, "150.00"), 1, "Coupon SAVE ($150.00 off, capped at the order)", "-99.00",
                 id="fixed, more than the order: the line says it was capped"),
    pytest.param(coupon(PERCENT, "100"), 1, "Coupon SAVE: 100% off", "-99.00", id="100% is never 'capped'"),
]


@pytest.mark.parametrize(("terms", "quantity", "description", "amount"), COUPON_LINES)
def test_the_coupon_line_says_what_was_taken_when_the_order_is_smaller(list_prices, terms, quantity, description,
                                                                      amount):
    [line] = lines_of(quote(list_prices, tier=PRO, quantity=quantity, coupon_code="SAVE", coupon=terms), "coupon")
    assert (line.description, line.amount) == (description, D(amount))


def test_combinable_coupon_applies_to_the_pro_rated_base(list_prices):
    # Mar 20 2027, anchor 15: 5 Pro monthly = 495.00 x 26/31 = 415.1612... -> 415.16;
    # 10% = 41.516 -> 41.52; left 373.64; 20% = 74.728 -> 74.73; total 298.91.
    q = quote(list_prices, tier=PRO, quantity=5, now=at(2027, 3, 20), coupon_code="SAVE", coupon=coupon())
    check(q, charged_base="415.16", volume_discount="41.52", coupon_discount="74.73", total_due="298.91")


def test_no_coupon_code_means_no_coupon_message(list_prices):
    q = quote(list_prices, tier=PRO, quantity=5)
    check(q, coupon_code="", coupon_applied=False, coupon_discount="0.00", coupon_message="", total_due="445.50")


COUPON_PROBLEMS = [
    pytest.param("NOPE", None, "NOPE is not a valid coupon code", id="unknown code"),
    pytest.param("SPRING", coupon(code="SPRING", expires_at=at(2027, 3, 14)), "SPRING has expired", id="expired"),
    pytest.param("SPRING", coupon(code="SPRING", expires_at=at(2027, 3, 15)), "SPRING has expired",
                 id="expires at this very moment"),
    pytest.param("SPRING", coupon(code="SPRING", starts_at=datetime(2027, 4, 1, tzinfo=UTC)),
                 "SPRING is not valid until Apr 1, 2027", id="not yet valid"),
    pytest.param("SPRING", coupon(code="SPRING", max_redemptions=50, times_redeemed=50),
                 "SPRING has been fully redeemed", id="fully redeemed"),
    pytest.param("SPRING", coupon(code="SPRING", once_per_account=True, used_by_account=True),
                 "SPRING has already been used on this account", id="already used on this account"),
    pytest.param("SPRING", coupon(code="SPRING", tiers=frozenset({PREMIUM})),
                 "SPRING applies only to Premium licenses", id="tier restriction"),
    pytest.param("SPRING", coupon(code="SPRING", tiers=frozenset({PREMIUM, BASIC})),
                 "SPRING applies only to Basic, Premium licenses", id="restricted to two other tiers"),
    pytest.param("SPRING", coupon(code="SPRING", periods=frozenset({ANNUAL})),
                 "SPRING applies only to annual billing", id="period restriction"),
]


@pytest.mark.parametrize(("code", "terms", "message"), COUPON_PROBLEMS)
def test_invalid_coupon_gives_no_discount_says_why_and_the_order_is_still_priced(list_prices, code, terms, message):
    q = quote(list_prices, tier=PRO, quantity=5, coupon_code=code, coupon=terms)
    check(q, coupon_code=code, coupon_applied=False, coupon_discount="0.00", coupon_message=message,
          list_subtotal="495.00", volume_discount="49.50", total_due="445.50")
    assert lines_of(q, "coupon") == []


COUPONS_JUST_VALID = [
    pytest.param(coupon(starts_at=at(2027, 3, 15)), id="starts at this very moment"),
    pytest.param(coupon(expires_at=at(2027, 3, 15) + timedelta(seconds=1)), id="expires a second from now"),
    pytest.param(coupon(max_redemptions=50, times_redeemed=49), id="one redemption left"),
    pytest.param(coupon(once_per_account=True, used_by_account=False), id="once per account, not used yet"),
    pytest.param(coupon(tiers=frozenset({PRO, PREMIUM}), periods=frozenset({MONTHLY})), id="tier and period allowed"),
]


@pytest.mark.parametrize("terms", COUPONS_JUST_VALID)
def test_coupon_on_the_edge_of_its_limits_still_applies(list_prices, terms):
    q = quote(list_prices, tier=PRO, quantity=5, coupon_code="SAVE", coupon=terms)
    check(q, coupon_applied=True, coupon_discount="89.10", total_due="356.40", coupon_message="SAVE: 20% off")


# --- Pro-rata, renewal dates and the monthly anchor ----------------------------------------------

PRORATA = [
    # purchase day, anchor before, (days charged, cycle days) or None, charged base, renews on,
    # all for one Basic monthly license at 49.00.
    pytest.param(date(2027, 2, 28), 31, None, "49.00", date(2027, 3, 31),
                 id="anchor 31 on Feb 28 2027 is the anchor date: no pro-rata, renews Mar 31"),
    pytest.param(date(2027, 1, 31), 31, None, "49.00", date(2027, 2, 28),
                 id="anchor 31 on Jan 31 is the anchor date: no pro-rata, renews Feb 28"),
    pytest.param(date(2028, 1, 31), 31, None, "49.00", date(2028, 2, 29),
                 id="anchor 31 on Jan 31 2028 renews Feb 29 (leap year)"),
    pytest.param(date(2027, 2, 27), 31, (1, 28), "1.75", date(2027, 2, 28),  # 49 x 1/28 = 1.75
                 id="anchor 31 on Feb 27 2027: 1 of 28 days (Jan 31 -> Feb 28)"),
    pytest.param(date(2028, 2, 15), 30, (14, 30), "22.87", date(2028, 2, 29),  # 49 x 14/30 = 22.866...
                 id="anchor 30 on Feb 15 2028: 14 of 30 days (Jan 30 -> Feb 29)"),
    pytest.param(date(2028, 2, 29), 29, None, "49.00", date(2028, 3, 29),
                 id="anchor 29 on Feb 29 2028 is the anchor date"),
    pytest.param(date(2027, 2, 28), 29, None, "49.00", date(2027, 3, 29),
                 id="anchor 29 on Feb 28 2027 is the anchor date (last day stands in)"),
    pytest.param(date(2028, 2, 28), 29, (1, 31), "1.58", date(2028, 2, 29),  # 49 x 1/31 = 1.5806...
                 id="anchor 29 on Feb 28 2028: 1 of 31 days (Jan 29 -> Feb 29)"),
    pytest.param(date(2027, 2, 15), 29, (13, 30), "21.23", date(2027, 2, 28),  # 49 x 13/30 = 21.233...
                 id="anchor 29 on Feb 15 2027: 13 of 30 days (Jan 29 -> Feb 28)"),
    pytest.param(date(2027, 3, 1), 29, (28, 29), "47.31", date(2027, 3, 29),  # 49 x 28/29 = 47.3103...
                 id="anchor 29 on Mar 1 2027: 28 of 29 days (Feb 28 -> Mar 29)"),
    pytest.param(date(2027, 12, 31), 31, None, "49.00", date(2028, 1, 31),
                 id="anchor 31 on Dec 31 renews Jan 31 next year"),
    pytest.param(date(2027, 12, 31), 1, (1, 31), "1.58", date(2028, 1, 1),
                 id="anchor 1 on Dec 31: 1 of 31 days, renews Jan 1 next year"),
    pytest.param(date(2027, 3, 20), 15, (26, 31), "41.10", date(2027, 4, 15),  # 49 x 26/31 = 41.0967...
                 id="anchor 15 bought on Mar 20: 26 of 31 days, rounded half-up"),
    pytest.param(date(2027, 3, 10), 15, (5, 28), "8.75", date(2027, 3, 15),  # 49 x 5/28 = 8.75
                 id="anchor 15 bought on Mar 10: 5 of 28 days (Feb 15 -> Mar 15)"),
    pytest.param(date(2027, 3, 5), None, None, "49.00", date(2027, 4, 5),
                 id="first monthly purchase sets the anchor to today, renews next month"),
    pytest.param(date(2027, 1, 31), None, None, "49.00", date(2027, 2, 28),
                 id="first monthly purchase on Jan 31 renews Feb 28"),
    pytest.param(date(2028, 1, 31), None, None, "49.00", date(2028, 2, 29),
                 id="first monthly purchase on Jan 31 2028 renews Feb 29"),
    pytest.param(date(2028, 2, 29), None, None, "49.00", date(2028, 3, 29),
                 id="first monthly purchase on Feb 29 renews Mar 29"),
]


@pytest.mark.parametrize(("day", "anchor", "days", "charged", "renews_on"), PRORATA)
def test_monthly_purchase_is_pro_rated_to_the_anchor(list_prices, day, anchor, days, charged, renews_on):
    q = quote(list_prices, now=at(day.year, day.month, day.day), anchor_day=anchor)
    adjustment = str(D(charged) - D("49.00"))
    prorata_days, cycle_days = days or (None, None)
    check(q, list_subtotal="49.00", charged_base=charged, prorata_adjustment=adjustment, total_due=charged,
          prorata_days=prorata_days, cycle_days=cycle_days, renews_on=renews_on,
          anchor_day=anchor if anchor is not None else day.day)
    prorata_lines = lines_of(q, "prorata")
    assert len(prorata_lines) == (1 if days else 0)
    if days:
        assert prorata_lines[0].amount == D(adjustment)


def test_prorata_line_says_how_many_days_until_when(list_prices):
    q = quote(list_prices, now=at(2028, 2, 15), anchor_day=30)
    [line] = lines_of(q, "prorata")
    assert line.description == "Pro-rata: 14 of 30 days until Feb 29"
    assert line.amount == D("-26.13")  # 22.87 - 49.00


def test_prorata_scales_the_whole_subtotal_once(list_prices):
    # 2 Pro monthly on Mar 20, anchor 15: 198.00 x 26/31 = 166.0645... -> 166.06
    q = quote(list_prices, tier=PRO, quantity=2, now=at(2027, 3, 20))
    check(q, charged_base="166.06", prorata_adjustment="-31.94", total_due="166.06")


def test_purchase_time_of_day_does_not_matter_only_the_utc_date(list_prices):
    early = quote(list_prices, now=datetime(2027, 3, 20, 0, 0, tzinfo=UTC))
    late = quote(list_prices, now=datetime(2027, 3, 20, 23, 59, 59, tzinfo=UTC))
    assert early.charged_base == late.charged_base == D("41.10")


ANNUAL_RENEWALS = [
    pytest.param(date(2027, 6, 10), 12, date(2028, 6, 10), id="annual renews one year later, anchor unchanged"),
    pytest.param(date(2028, 2, 29), None, date(2029, 2, 28), id="annual bought Feb 29 2028 renews Feb 28 2029"),
    pytest.param(date(2027, 2, 28), 31, date(2028, 2, 28), id="annual bought Feb 28 2027 renews Feb 28 2028"),
    pytest.param(date(2027, 12, 31), 5, date(2028, 12, 31), id="annual bought Dec 31 renews Dec 31"),
]


@pytest.mark.parametrize(("day", "anchor", "renews_on"), ANNUAL_RENEWALS)
def test_annual_purchase_is_never_pro_rated_and_renews_a_year_later(list_prices, day, anchor, renews_on):
    q = quote(list_prices, period=ANNUAL, quantity=2, now=at(day.year, day.month, day.day), anchor_day=anchor)
    check(q, list_subtotal="980.00", charged_base="980.00", prorata_adjustment="0.00", prorata_days=None,
          cycle_days=None, renews_on=renews_on, anchor_day=anchor, total_due="980.00")


def _half_cent_prorata_case():
    """A list price and purchase day whose pro-rata share is exactly some cents and a half.

    Whole-dollar prices (all of the listed ones) can never land there: cycles of 28-31 days leave
    at most 2 decimals. So the search walks list prices up from 49.00 a cent at a time.
    """
    cycles = {  # anchor 15: a cycle of each possible length
        28: (date(2027, 2, 15), date(2027, 3, 15)),
        29: (date(2028, 2, 15), date(2028, 3, 15)),
        30: (date(2027, 4, 15), date(2027, 5, 15)),
        31: (date(2027, 3, 15), date(2027, 4, 15)),
    }
    for cents in range(4900, 5000):
        for cycle_days, (_, end) in cycles.items():
            for days_left in range(1, cycle_days):
                exact = Fraction(cents, 100) * days_left / cycle_days * 1000
                if exact.denominator == 1 and exact.numerator % 10 == 5:
                    return D(cents) / 100, end - timedelta(days=days_left), Fraction(exact.numerator, 1000)
    raise AssertionError("no half-cent pro-rata case found")


HALF_CENT_PRICE, HALF_CENT_DAY, HALF_CENT_EXACT = _half_cent_prorata_case()


def test_prorata_landing_on_half_a_cent_rounds_up_found_by_search(list_prices):
    list_prices[(BASIC, MONTHLY)] = HALF_CENT_PRICE
    q = quote(list_prices, now=at(HALF_CENT_DAY.year, HALF_CENT_DAY.month, HALF_CENT_DAY.day))
    assert q.prorata_days is not None
    assert Fraction(q.charged_base) == HALF_CENT_EXACT + Fraction(5, 1000)


def test_prorata_of_12_475_rounds_up_to_12_48(list_prices):
    # A Basic price of 49.90, anchor 15, bought Mar 8 2027: 7 of 28 days (Feb 15 -> Mar 15).
    # 49.90 x 7/28 = 12.475 exactly -> 12.48.
    list_prices[(BASIC, MONTHLY)] = D("49.90")
    q = quote(list_prices, now=at(2027, 3, 8))
    check(q, prorata_days=7, cycle_days=28, charged_base="12.48", prorata_adjustment="-37.42", total_due="12.48")


def test_volume_discount_of_half_a_cent_rounds_up(list_prices):
    # 5 Basic monthly on Mar 10 2027, anchor 15: 245.00 x 5/28 = 43.75; 10% = 4.375 -> 4.38.
    q = quote(list_prices, quantity=5, now=at(2027, 3, 10))
    check(q, charged_base="43.75", volume_discount="4.38", total_due="39.37")


# --- Credit balance -------------------------------------------------------------------------------

CREDIT = [
    # 5 Pro monthly on the anchor date: 495.00 - 49.50 = 445.50 left before credit.
    pytest.param("0.00", dict(credit_applied="0.00", total_due="445.50", credit_balance_after="0.00"),
                 id="no credit"),
    pytest.param("100.00", dict(credit_applied="100.00", total_due="345.50", credit_balance_after="0.00"),
                 id="credit smaller than the total is used in full"),
    pytest.param("445.50", dict(credit_applied="445.50", total_due="0.00", credit_balance_after="0.00"),
                 id="credit equal to the total"),
    pytest.param("1000.00", dict(credit_applied="445.50", total_due="0.00", credit_balance_after="554.50"),
                 id="credit larger than the total: only what is left is used, the rest stays"),
]


@pytest.mark.parametrize(("balance", "expected"), CREDIT)
def test_credit_balance_is_applied_last_and_never_more_than_what_is_left(list_prices, balance, expected):
    q = quote(list_prices, tier=PRO, quantity=5, credit_balance=D(balance))
    check(q, credit_balance=balance, volume_discount="49.50", **expected)
    credit_lines = lines_of(q, "credit_applied")
    assert [line.amount for line in credit_lines] == ([-D(expected["credit_applied"])] if D(balance) else [])
    assert q.lines[-1].kind == ("credit_applied" if D(balance) else "volume_discount")


def test_credit_balance_is_applied_after_the_coupon(list_prices):
    # 445.50 - 20% (89.10) = 356.40, then 50.00 of credit -> 306.40
    q = quote(list_prices, tier=PRO, quantity=5, coupon_code="SAVE", coupon=coupon(), credit_balance=D("50.00"))
    check(q, coupon_discount="89.10", credit_applied="50.00", total_due="306.40")


def test_nothing_left_after_a_free_coupon_leaves_the_credit_untouched(list_prices):
    q = quote(list_prices, tier=PRO, quantity=5, coupon_code="SAVE", coupon=coupon(PERCENT, "100"),
              credit_balance=D("50.00"))
    check(q, credit_applied="0.00", total_due="0.00", credit_balance_after="50.00")
    assert lines_of(q, "credit_applied") == []


def test_volume_adjustment_is_used_before_the_balance_and_the_balance_pays_the_rest(list_prices):
    # 4 active + 1 -> 10%: 44.10 left; the 19.60 adjustment is used first, 24.50 of the 50.00 balance next.
    q = quote(list_prices, active_licenses=licenses(4, **TODAY_PERIOD), credit_balance=D("50.00"))
    check(q, volume_adjustment="19.60", credit_applied="44.10", total_due="0.00", credit_balance_after="25.50")
    assert [(line.kind, line.amount) for line in q.lines] == [
        ("item", D("49.00")),
        ("volume_discount", D("-4.90")),
        ("volume_adjustment", D("-19.60")),
        ("credit_applied", D("-24.50")),
    ]
    assert lines_of(q, "credit_carried") == []


# --- Next bracket hint ----------------------------------------------------------------------------

NEXT_BRACKET = [
    pytest.param(0, 1, 4, "0.10", id="1 after purchase -> 4 more for 10%"),
    pytest.param(0, 3, 2, "0.10", id="3 after purchase -> 2 more for 10%"),
    pytest.param(3, 1, 1, "0.10", id="4 after purchase -> 1 more for 10%"),
    pytest.param(0, 5, 5, "0.15", id="5 after purchase -> 5 more for 15%"),
    pytest.param(8, 1, 1, "0.15", id="9 after purchase -> 1 more for 15%"),
    pytest.param(9, 1, None, None, id="10 after purchase -> top bracket"),
    pytest.param(20, 5, None, None, id="25 after purchase -> top bracket"),
]


@pytest.mark.parametrize(("active_count", "quantity", "gap", "rate"), NEXT_BRACKET)
def test_next_bracket_gap(list_prices, active_count, quantity, gap, rate):
    active = licenses(active_count, rate="0.15", **TODAY_PERIOD)
    q = quote(list_prices, quantity=quantity, active_licenses=active)
    assert q.next_bracket_gap == gap
    assert q.next_bracket_rate == (D(rate) if rate else None)


# --- Refused inputs -------------------------------------------------------------------------------

REFUSED = [
    pytest.param(dict(tier="gold"), id="unknown tier"),
    pytest.param(dict(tier="Basic"), id="tier label instead of key"),
    pytest.param(dict(period="weekly"), id="unknown period"),
    pytest.param(dict(quantity=0), id="quantity 0"),
    pytest.param(dict(quantity=-1), id="quantity -1"),
    pytest.param(dict(quantity=101), id="quantity 101"),
    pytest.param(dict(quantity=2.5), id="quantity 2.5"),
    pytest.param(dict(quantity=3.0), id="quantity 3.0 (a float)"),
    pytest.param(dict(quantity=True), id="quantity True"),
    pytest.param(dict(quantity="3"), id="quantity '3' (a string)"),
    pytest.param(dict(quantity=None), id="quantity None"),
]


@pytest.mark.parametrize("choice", REFUSED)
def test_invalid_choice_is_refused_with_a_pricing_error(list_prices, choice):
    with pytest.raises(PricingError):
        quote(list_prices, **choice)


def test_missing_price_is_a_pricing_error(list_prices):
    del list_prices[(PREMIUM, ANNUAL)]
    with pytest.raises(PricingError):
        quote(list_prices, tier=PREMIUM, period=ANNUAL)


def test_quantity_limits_are_accepted(list_prices):
    assert quote(list_prices, quantity=1).list_subtotal == D("49.00")
    assert quote(list_prices, quantity=100).list_subtotal == D("4900.00")
