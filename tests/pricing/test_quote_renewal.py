"""quote_renewal and the renewal calendar: worked examples, computed by hand in the comments."""

from datetime import date
from decimal import Decimal

import pytest

from pictor_billing.pricing import (
    PricingError,
    RenewingLicense,
    next_annual_date,
    next_monthly_date,
    quote_renewal,
)
from tests.pricing.test_quote_purchase import PRICES

D = Decimal
JAN31 = date(2027, 1, 31)


def renewing(tier, period, count, *, to, first_id=1):
    return [RenewingLicense(first_id + n, tier, period, to) for n in range(count)]


def figures(q):
    return {"count": q.count, "rate": str(q.rate), "subtotal": str(q.subtotal), "discount": str(q.volume_discount),
            "credit": str(q.credit_applied), "total": str(q.total_due)}


@pytest.mark.parametrize(("licenses", "others", "credit", "expected"), [
    # 1 Pro monthly alone: $99.00, no bracket.
    pytest.param(renewing("pro", "monthly", 1, to=date(2027, 2, 28)), 0, "0",
                 {"count": 1, "rate": "0.00", "subtotal": "99.00", "discount": "0.00", "credit": "0.00",
                  "total": "99.00"}, id="one alone"),
    # 3 renewing + 2 others staying active = 5: 10%. 3 × $99.00 = $297.00; − $29.70 = $267.30.
    pytest.param(renewing("pro", "monthly", 3, to=date(2027, 2, 28)), 2, "0",
                 {"count": 5, "rate": "0.10", "subtotal": "297.00", "discount": "29.70", "credit": "0.00",
                  "total": "267.30"}, id="others count towards the bracket"),
    # 4 renewing, nobody else: 4, no bracket although the account once had more.
    pytest.param(renewing("basic", "annual", 4, to=date(2028, 1, 31)), 0, "0",
                 {"count": 4, "rate": "0.00", "subtotal": "1960.00", "discount": "0.00", "credit": "0.00",
                  "total": "1960.00"}, id="cancellations dropped the bracket"),
    # 10 at 15%: 6 Premium monthly ($894.00) + 4 Basic annual ($1,960.00) = $2,854.00; 15% = $428.10;
    # $2,425.90; $100.00 credit first: $2,325.90.
    pytest.param(renewing("premium", "monthly", 6, to=date(2027, 2, 28))
                 + renewing("basic", "annual", 4, to=date(2028, 1, 31), first_id=10), 0, "100.00",
                 {"count": 10, "rate": "0.15", "subtotal": "2854.00", "discount": "428.10", "credit": "100.00",
                  "total": "2325.90"}, id="top bracket, mixed periods, credit first"),
    # Credit larger than the renewal: it is all paid by credit, the rest of the credit stays.
    pytest.param(renewing("pro", "annual", 1, to=date(2028, 1, 31)), 0, "1000.00",
                 {"count": 1, "rate": "0.00", "subtotal": "990.00", "discount": "0.00", "credit": "990.00",
                  "total": "0.00"}, id="credit pays it all"),
])
def test_a_renewal_is_priced_at_the_bracket_of_its_date(licenses, others, credit, expected):
    q = quote_renewal(billing_date=JAN31, prices=PRICES, renewing=licenses, others_active=others,
                      credit_balance=D(credit))
    assert figures(q) == expected
    assert sum(line.amount for line in q.lines) == q.total_due


def test_the_lines_say_what_renews_for_which_period_then_the_discount_and_the_credit():
    q = quote_renewal(billing_date=JAN31, prices=PRICES, others_active=2, credit_balance=D("10.00"),
                      renewing=renewing("pro", "monthly", 3, to=date(2027, 2, 28))
                      + renewing("basic", "annual", 1, to=date(2028, 1, 31), first_id=9))
    assert [(line.kind, line.description, line.quantity, line.amount) for line in q.lines] == [
        ("item", "Pro license, monthly: Jan 31, 2027 – Feb 28, 2027", 3, D("297.00")),
        ("item", "Basic license, annual: Jan 31, 2027 – Jan 31, 2028", 1, D("490.00")),
        # 6 in the bracket: 10% of $787.00 = $78.70.
        ("volume_discount", "Volume discount 10% (6 active licenses)", 1, D("-78.70")),
        ("credit_applied", "Credit balance applied", 1, D("-10.00")),
    ]
    assert q.total_due == D("698.30")
    # Each license remembers the rate it renewed at and what it paid: list × (1 − rate).
    assert {(lic.tier, lic.rate, lic.paid) for lic in q.licenses} == {("pro", D("0.10"), D("89.10")),
                                                                     ("basic", D("0.10"), D("441.00"))}
    assert q.service_to == date(2028, 1, 31)


def test_prices_are_those_given_for_the_billing_date():
    raised = {**PRICES, ("pro", "monthly"): D("109.00")}
    q = quote_renewal(billing_date=JAN31, prices=raised, others_active=0,
                      renewing=renewing("pro", "monthly", 1, to=date(2027, 2, 28)))
    assert q.total_due == D("109.00")


def test_the_discount_rounds_once_half_up_on_the_subtotal():
    # 1 license at $9.99 with 9 others: 15% of $9.99 = $1.4985 -> $1.50 (half-up), $8.49 due.
    q = quote_renewal(billing_date=JAN31, prices={**PRICES, ("basic", "monthly"): D("9.99")}, others_active=9,
                      renewing=renewing("basic", "monthly", 1, to=date(2027, 2, 28)))
    assert (q.volume_discount, q.total_due) == (D("1.50"), D("8.49"))


def test_licenses_counted_by_shape_price_as_the_licenses_one_by_one():
    """The Licenses tab's line quotes 600 alike licenses as two entries: the same lines, bracket and total."""
    feb28, next_jan = date(2027, 2, 28), date(2028, 1, 31)
    one_by_one = renewing("premium", "monthly", 400, to=feb28) + renewing("basic", "annual", 200, to=next_jan,
                                                                            first_id=401)
    counted = [RenewingLicense(1, "premium", "monthly", feb28, count=400),
               RenewingLicense(401, "basic", "annual", next_jan, count=200)]
    quotes = [quote_renewal(billing_date=JAN31, prices=PRICES, renewing=entries, others_active=5,
                            credit_balance=D("30.00")) for entries in (one_by_one, counted)]
    assert figures(quotes[0]) == figures(quotes[1])
    assert [quote.lines for quote in quotes] == [quotes[0].lines] * 2
    assert [(quote.quantity, quote.what) for quote in quotes] == [(600, "400 Premium monthly, 200 Basic annual")] * 2


@pytest.mark.parametrize(("bad", "message"), [
    ({"renewing": []}, "at least one"),
    ({"others_active": -1}, "negative"),
    ({"renewing": [RenewingLicense(1, "gold", "monthly", date(2027, 2, 28))]}, "cannot renew"),
    ({"renewing": [RenewingLicense(1, "pro", "monthly", JAN31)]}, "later date"),
    ({"prices": {}}, "no price"),
    ({"renewing": [RenewingLicense(1, "pro", "monthly", date(2027, 2, 28), count=0)]}, "at least one license"),
])
def test_what_cannot_be_priced_is_refused(bad, message):
    arguments = {"billing_date": JAN31, "prices": PRICES, "others_active": 0,
                 "renewing": renewing("pro", "monthly", 1, to=date(2027, 2, 28)), **bad}
    with pytest.raises(PricingError, match=message):
        quote_renewal(**arguments)


@pytest.mark.parametrize(("billing_date", "anchor_day", "expected"), [
    (date(2027, 1, 31), 31, date(2027, 2, 28)),  # anchor 31 in February: the last day stands in
    (date(2027, 2, 28), 31, date(2027, 3, 31)),  # and back to the 31st after it
    (date(2028, 1, 31), 31, date(2028, 2, 29)),  # a leap February
    (date(2027, 1, 30), 30, date(2027, 2, 28)),
    (date(2027, 2, 28), 30, date(2027, 3, 30)),
    (date(2027, 1, 29), 29, date(2027, 2, 28)),
    (date(2028, 1, 29), 29, date(2028, 2, 29)),
    (date(2027, 12, 15), 15, date(2028, 1, 15)),  # over the year's end
    (date(2027, 4, 30), 31, date(2027, 5, 31)),
])
def test_monthly_renewals_fall_on_the_anchor_day(billing_date, anchor_day, expected):
    assert next_monthly_date(billing_date, anchor_day) == expected


@pytest.mark.parametrize(("billing_date", "anchor_on", "expected"), [
    (date(2025, 2, 28), date(2024, 2, 29), date(2026, 2, 28)),  # bought on a leap day, renewed in common years
    (date(2027, 2, 28), date(2024, 2, 29), date(2028, 2, 29)),  # ... and on Feb 29 in the next leap year
    (date(2028, 2, 29), date(2024, 2, 29), date(2029, 2, 28)),
    (date(2027, 3, 1), date(2026, 3, 1), date(2028, 3, 1)),
    (date(2027, 12, 31), date(2026, 12, 31), date(2028, 12, 31)),
])
def test_annual_renewals_count_from_the_groups_first_date(billing_date, anchor_on, expected):
    assert next_annual_date(billing_date, anchor_on) == expected
