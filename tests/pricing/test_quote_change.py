"""quote_change: upgrades priced now — worked examples, computed by hand in the comments.

Prices (SPEC): Basic $49 / $490, Pro $99 / $990, Premium $149 / $1,490.
"""

from datetime import date
from decimal import Decimal

import pytest

from pictor_billing.pricing import DOWN, SAME, UP, ChangingLicense, PricingError, change_direction, quote_change
from tests.pricing.test_quote_purchase import PRICES

D = Decimal
DEC1, DEC11, JAN1 = date(2026, 12, 1), date(2026, 12, 11), date(2027, 1, 1)  # a 31-day cycle


def lic(n=1, tier="pro", period="monthly", *, list_price="99.00", rate="0.00", paid=None, start=DEC1, end=JAN1):
    return ChangingLicense(n, tier, period, D(list_price), D(rate), D(paid if paid is not None else list_price),
                           start, end)


def figures(q):
    return {"credit": str(q.credit_unused), "charge": str(q.charge_new), "balance": str(q.balance_applied),
            "carried": str(q.credit_carried), "total": str(q.total_due)}


@pytest.mark.parametrize(("licenses", "tier", "period", "today", "active", "balance", "expected"), [
    # Day 11 of 31: 21 days left. Credit min($99, $99) × 21/31 = $67.064… → $67.06;
    # Premium $149 × 21/31 = $100.935… → $100.94; total $33.88.
    pytest.param([lic()], "premium", "monthly", DEC11, 1, "0",
                 {"credit": "67.06", "charge": "100.94", "balance": "0.00", "carried": "0.00", "total": "33.88"},
                 id="pro to premium on day 11 of 31"),
    # Paid less than list × (1 − rate) (a coupon took $20): credit min($99, $79) × 21/31 = $53.516… → $53.52.
    pytest.param([lic(paid="79.00")], "premium", "monthly", DEC11, 1, "0",
                 {"credit": "53.52", "charge": "100.94", "balance": "0.00", "carried": "0.00", "total": "47.42"},
                 id="the credit never exceeds what was paid"),
    # A 100% coupon: paid $0, so no credit is minted; Premium $100.94 for the rest.
    pytest.param([lic(paid="0.00")], "premium", "monthly", DEC11, 1, "0",
                 {"credit": "0.00", "charge": "100.94", "balance": "0.00", "carried": "0.00", "total": "100.94"},
                 id="free license mints no credit"),
    # Two at 10% (5 active): credit each min($89.10, $89.10) × 21/31 = $60.358… → $60.36, × 2 = $120.72;
    # charge each $149 × 0.9 × 21/31 = $90.841… → $90.84, × 2 = $181.68; total $60.96 (rounded per license).
    pytest.param([lic(1, rate="0.10", paid="89.10"), lic(2, rate="0.10", paid="89.10")], "premium", "monthly",
                 DEC11, 5, "0",
                 {"credit": "120.72", "charge": "181.68", "balance": "0.00", "carried": "0.00", "total": "60.96"},
                 id="two together at the bracket"),
    # Credit balance $20 applies after the change's own credit: $33.88 − $20 = $13.88.
    pytest.param([lic()], "premium", "monthly", DEC11, 1, "20.00",
                 {"credit": "67.06", "charge": "100.94", "balance": "20.00", "carried": "0.00", "total": "13.88"},
                 id="credit balance applied"),
    # Monthly -> annual on day 11: credit $67.06; Pro annual $990 for a full year; total $922.94.
    pytest.param([lic()], "pro", "annual", DEC11, 1, "0",
                 {"credit": "67.06", "charge": "990.00", "balance": "0.00", "carried": "0.00", "total": "922.94"},
                 id="monthly to annual"),
    # Annual Basic bought 2028-01-01 (leap year: 366 days to 2029-01-01), upgraded 2028-03-01: 306 days left.
    # Credit $490 × 306/366 = $409.672… → $409.67; Pro annual $990 × 306/366 = $827.704… → $827.70.
    pytest.param([lic(tier="basic", period="annual", list_price="490.00", start=date(2028, 1, 1),
                      end=date(2029, 1, 1))], "pro", "annual", date(2028, 3, 1), 1, "0",
                 {"credit": "409.67", "charge": "827.70", "balance": "0.00", "carried": "0.00", "total": "418.03"},
                 id="annual across a leap year"),
    # On the last day of a 28-day February cycle (anchor 31: Jan 31 – Feb 28): 1 day left of 28.
    # Credit $99 × 1/28 = $3.535… → $3.54; Premium $149 × 1/28 = $5.321… → $5.32.
    pytest.param([lic(start=date(2027, 1, 31), end=date(2027, 2, 28))], "premium", "monthly", date(2027, 2, 27),
                 1, "0",
                 {"credit": "3.54", "charge": "5.32", "balance": "0.00", "carried": "0.00", "total": "1.78"},
                 id="month end, one day left"),
])
def test_worked_examples(licenses, tier, period, today, active, balance, expected):
    q = quote_change(today=today, prices=PRICES, licenses=licenses, tier=tier, period=period, active_count=active,
                     credit_balance=D(balance))
    assert figures(q) == expected
    assert sum(line.amount for line in q.lines) == q.total_due, "the lines add up to the total"


def test_monthly_to_annual_renews_a_year_from_today_and_tier_up_keeps_the_billing_date():
    q = quote_change(today=DEC11, prices=PRICES, licenses=[lic()], tier="pro", period="annual", active_count=1)
    assert q.licenses[0].renews_to == date(2027, 12, 11)
    q = quote_change(today=DEC11, prices=PRICES, licenses=[lic()], tier="premium", period="monthly", active_count=1)
    assert q.licenses[0].renews_to == JAN1
    assert (q.licenses[0].list_price, q.licenses[0].rate) == (D("149.00"), D("0.00"))


def test_a_credit_larger_than_the_charge_is_kept_as_credit():
    # Basic monthly paid $49 at 0%, credit $49 × 21/31 = $33.193… → $33.19; the account now has 10 active
    # licenses (15%) and Pro is on sale at $40: $40 × 0.85 × 21/31 = $23.032… → $23.03.
    q = quote_change(today=DEC11, prices={**PRICES, ("pro", "monthly"): D("40.00")},
                     licenses=[lic(tier="basic", list_price="49.00")], tier="pro", period="monthly", active_count=10)
    # The credit covers the charge: $10.16 goes to the credit balance, nothing is due.
    assert figures(q) == {"credit": "33.19", "charge": "23.03", "balance": "0.00", "carried": "10.16",
                          "total": "0.00"}
    assert sum(line.amount for line in q.lines) == q.total_due


@pytest.mark.parametrize(("old", "new", "direction"), [
    (("basic", "monthly"), ("pro", "monthly"), UP),
    (("pro", "monthly"), ("pro", "annual"), UP),
    (("basic", "monthly"), ("premium", "annual"), UP),
    (("pro", "monthly"), ("pro", "monthly"), SAME),
    (("pro", "monthly"), ("basic", "monthly"), DOWN),
    (("pro", "annual"), ("pro", "monthly"), DOWN),
    (("basic", "annual"), ("premium", "monthly"), DOWN),  # the period goes down: at the billing date
])
def test_a_change_is_immediate_only_if_nothing_goes_down(old, new, direction):
    assert change_direction(*old, *new) == direction


@pytest.mark.parametrize(("licenses", "tier", "period", "today"), [
    ([lic()], "basic", "monthly", DEC11),  # a downgrade
    ([lic()], "pro", "monthly", DEC11),  # no change
    ([lic()], "premium", "monthly", JAN1),  # due today: not inside its period
    ([lic(), lic()], "premium", "monthly", DEC11),  # the same license twice
    ([], "premium", "monthly", DEC11),
    ([lic()], "gold", "monthly", DEC11),
])
def test_what_is_not_an_upgrade_now_is_refused(licenses, tier, period, today):
    with pytest.raises(PricingError):
        quote_change(today=today, prices=PRICES, licenses=licenses, tier=tier, period=period, active_count=1)
