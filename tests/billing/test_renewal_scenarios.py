"""Whole-year scenarios through test clocks: an account lives a year (or four) at a time, and each step is
checked to the cent — its invoices (number series, kind, lines, totals, status), its credit ledger and its
licenses' states and dates.

Every expected figure is worked out by hand from docs/rules.md (the arithmetic is in the comments), never
asked of the pricing code under test. Prices are the seeded list: Basic $49 / $490, Pro $99 / $990,
Premium $149 / $1,490 (monthly / annual); brackets 1-4 none, 5-9 10%, 10+ 15%.
"""

import datetime
from decimal import Decimal

import pytest

from billing.clocks import clock_advance, clock_attach
from billing.models import Renewal
from billing.renewals import NothingToPay, renewal_pay_now
from billing.run import billing_run
from invoices.models import Invoice, InvoiceSequence
from licenses.models import EventLease, License, LicenseTerm, PriceListEntry, RenewalGroup
from licenses.services import event_start, license_cancel
from payments.models import CreditEntry, PaymentAttempt
from payments.services import card_make_default, credit_balance
from tests.conftest import DECLINES_CHARGES, VISA, add_card
from tests.helpers import buy_directly, clock_set, processor_money

pytestmark = pytest.mark.django_db

D = Decimal
UTC = datetime.UTC
date = datetime.date
PAID, OPEN, FAILED, CREDITED = Invoice.PAID, Invoice.OPEN, Invoice.FAILED, Invoice.CREDITED
ACTIVE, PAST_DUE, EXPIRED = License.ACTIVE, License.PAST_DUE, License.EXPIRED


def at(year, month, day, hour=0) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, tzinfo=UTC)


def span(tier, period, start, end) -> str:
    """A renewal line's words: the tier, the period and the service period it bills."""
    return f"{tier} license, {period}: {start:%b} {start.day}, {start.year} – {end:%b} {end.day}, {end.year}"


@pytest.fixture
def on_clock(prices, alice):
    """Alice's fresh account on a test clock standing at `start`, with a Visa as its default card."""
    def attach(start, card=VISA):
        account = clock_attach(account=alice.account, start=start)
        add_card(account, card)
        return account
    return attach


@pytest.fixture
def advance(django_capture_on_commit_callbacks, mailoutbox):
    """Advance a test clock, sending the emails its days commit (the test's transaction never commits)."""
    def move(account, to):
        with django_capture_on_commit_callbacks(execute=True):
            return clock_advance(account=account, to=to)
    return move


def invoices_of(account) -> list[tuple]:
    return [(i.number, i.kind, i.issued_on, i.status, i.total)
            for i in Invoice.objects.filter(account=account).order_by("pk")]


def lines_of(invoice) -> list[tuple]:
    return [(line.kind, line.description, line.quantity, line.unit_price, line.amount)
            for line in invoice.lines.all()]


def renewed_on(account, billing_date) -> Invoice:
    return Renewal.objects.get(account=account, billing_date=billing_date).invoice


def ledger(account) -> list[tuple]:
    return [(e.kind, e.amount, e.invoice.number if e.invoice_id else None)
            for e in CreditEntry.objects.filter(account=account).select_related("invoice").order_by("pk")]


def licenses_of(account, **filters) -> list[tuple]:
    """(tier, period, status, period start, period end, rate), oldest license first."""
    return [(lic.tier, lic.period, lic.status, lic.period_start, lic.period_end, lic.discount_rate)
            for lic in License.objects.filter(account=account, **filters).order_by("pk")]


def admin_credit(account, amount) -> CreditEntry:
    # No service grants credit yet (and the ledger is read-only in admin): the row, as the other tests write it.
    return CreditEntry.objects.create(account=account, kind=CreditEntry.ADMIN_CREDIT, amount=amount,
                                      note="Goodwill", created_at=account.clock_frozen_at)


# --- 1. a Jan 31 anchor through the short months --------------------------------------------------------

@pytest.mark.parametrize(("year", "feb_end", "next_feb_end"), [(2027, 28, 29), (2028, 29, 28)])
def test_a_jan_31_anchor_renews_on_each_months_last_day_for_a_whole_year(on_clock, alice, advance, year, feb_end,
                                                                          next_feb_end):
    february, next_february = date(year, 2, feb_end), date(year + 1, 2, next_feb_end)
    account = on_clock(at(year, 1, 31, 10))
    buy_directly(account, alice, quantity=2)  # 2 Pro monthly: 2 × $99.00 = $198.00, the anchor day is 31
    account.refresh_from_db()
    assert account.monthly_anchor_day == 31
    assert licenses_of(account) == [("pro", "monthly", ACTIVE, date(year, 1, 31), february, D(0))] * 2

    advance(account, at(year, 2, feb_end, 10))
    invoice = renewed_on(account, february)
    # The last day of February stands in for the 31st: 2 × $99.00 = $198.00, 2 licenses, no bracket.
    assert lines_of(invoice) == [("item", span("Pro", "monthly", february, date(year, 3, 31)), 2, D("99.00"),
                                  D("198.00"))]
    assert (invoice.number, invoice.issued_on, invoice.status, invoice.total) == (
        f"PB-TEST-{year}-000002", february, PAID, D("198.00"))
    assert (invoice.service_from, invoice.service_to) == (february, date(year, 3, 31))
    assert invoice.description == f"Renewal of 2 licenses on Feb {feb_end}, {year}"

    # Bought on the stand-in day, a Basic monthly is *on* the anchor: the full $49.00, renewing Mar 31.
    basic = buy_directly(account, alice, tier="basic")
    assert lines_of(basic.invoice) == [("item", "Basic license, monthly", 1, D("49.00"), D("49.00"))]
    assert basic.licenses.get().period_end == date(year, 3, 31)

    advance(account, at(year + 1, 1, 31, 10))
    # Mar 31, Apr 30, May 31, Jun 30, Jul 31, Aug 31, Sep 30, Oct 31, Nov 30, Dec 31, then Jan 31:
    # each $49.00 + 2 × $99.00 = $247.00 (3 licenses, no bracket), numbered in the year it is issued.
    month_ends = [date(year, m, d) for m, d in ((3, 31), (4, 30), (5, 31), (6, 30), (7, 31), (8, 31), (9, 30),
                                                (10, 31), (11, 30), (12, 31))] + [date(year + 1, 1, 31)]
    period_ends = [*month_ends[1:], next_february]
    numbers = [f"PB-TEST-{year}-{n:06d}" for n in range(4, 14)] + [f"PB-TEST-{year + 1}-000001"]
    renewals = Renewal.objects.filter(account=account).order_by("billing_date")
    assert [(r.billing_date, r.status) for r in renewals] == [(day, Renewal.PAID) for day in [february, *month_ends]]
    assert invoices_of(account)[3:] == [(number, Invoice.RENEWAL, day, PAID, D("247.00"))
                                        for number, day in zip(numbers, month_ends, strict=True)]
    for start, end in zip(month_ends, period_ends, strict=True):
        invoice = renewed_on(account, start)
        assert lines_of(invoice) == [("item", span("Basic", "monthly", start, end), 1, D("49.00"), D("49.00")),
                                     ("item", span("Pro", "monthly", start, end), 2, D("99.00"), D("198.00"))]
        assert (invoice.service_from, invoice.service_to) == (start, end)

    assert licenses_of(account) == [("pro", "monthly", ACTIVE, date(year + 1, 1, 31), next_february, D(0))] * 2 + [
        ("basic", "monthly", ACTIVE, date(year + 1, 1, 31), next_february, D(0))]
    first_pro = License.objects.filter(account=account).order_by("pk").first()
    # Each paid term, $99.00 (no bracket below 5), from the purchase to the last renewal.
    starts, ends = [date(year, 1, 31), february, *month_ends], [february, date(year, 3, 31), *period_ends]
    assert [(t.starts_on, t.ends_on, t.paid) for t in first_pro.terms.all()] == [
        (start, end, D("99.00")) for start, end in zip(starts, ends, strict=True)]
    assert ledger(account) == []
    # $198.00 + $198.00 + $49.00 + 11 × $247.00 = $3,162.00
    assert processor_money() == 316200


# --- 2. mid-cycle additions, then the renewal at the bracket they reached --------------------------------

def test_mid_cycle_additions_are_pro_rated_and_the_renewal_takes_the_new_bracket(on_clock, alice, advance):
    account = on_clock(at(2027, 3, 10, 10))
    first = buy_directly(account, alice, quantity=4)  # 4 Pro monthly, 4 × $99.00 = $396.00: anchor Mar 10 → Apr 10
    assert lines_of(first.invoice) == [("item", "Pro license, monthly", 4, D("99.00"), D("396.00"))]

    advance(account, at(2027, 3, 20, 10))
    second = buy_directly(account, alice, tier="basic", quantity=2)
    # 2 × $49.00 = $98.00, pro-rated to 21 of the cycle's 31 days: 98 × 21 / 31 = 66.387 → $66.39 (−$31.61).
    # 6 active → 10%: 66.39 × 10% = 6.639 → −$6.64, leaving $59.75. The 4 Pro move 0% → 10% for 21 of 31 days:
    # 10% × 99 × 21 / 31 = 6.7065 → $6.71 each, $26.84, used at once: $59.75 − $26.84 = $32.91.
    assert lines_of(second.invoice) == [
        ("item", "Basic license, monthly", 2, D("49.00"), D("98.00")),
        ("prorata", "Pro-rata: 21 of 31 days until Apr 10", 1, D("-31.61"), D("-31.61")),
        ("volume_discount", "Volume discount 10% (6 active licenses)", 1, D("-6.64"), D("-6.64")),
        ("volume_adjustment", "Volume discount adjustment: 4 active licenses move to 10% for the rest of their period",
         1, D("-26.84"), D("-26.84")),
    ]
    invoice = second.invoice
    assert (invoice.subtotal, invoice.discount_total, invoice.credit_applied, invoice.total) == (
        D("66.39"), D("6.64"), D("26.84"), D("32.91"))
    # Each Basic paid (66.39 − 6.64) / 2 = 29.875 → $29.88 of its mid-cycle term.
    assert {t.paid for t in LicenseTerm.objects.filter(invoice=invoice)} == {D("29.88")}

    advance(account, at(2027, 3, 31, 10))
    third = buy_directly(account, alice, tier="premium", quantity=4)
    # 4 × $149.00 = $596.00 for 10 of 31 days: 5960 / 31 = 192.258 → $192.26 (−$403.74). 10 active → 15%:
    # 192.26 × 15% = 28.839 → −$28.84, leaving $163.42. The 6 at 10% move to 15% for 10 of 31 days:
    # Pro 5% × 99 × 10 / 31 = 1.5968 → $1.60 (× 4 = $6.40), Basic 5% × 49 × 10 / 31 = 0.7903 → $0.79 (× 2 = $1.58):
    # $7.98, used at once: $163.42 − $7.98 = $155.44.
    assert lines_of(third.invoice) == [
        ("item", "Premium license, monthly", 4, D("149.00"), D("596.00")),
        ("prorata", "Pro-rata: 10 of 31 days until Apr 10", 1, D("-403.74"), D("-403.74")),
        ("volume_discount", "Volume discount 15% (10 active licenses)", 1, D("-28.84"), D("-28.84")),
        ("volume_adjustment", "Volume discount adjustment: 6 active licenses move to 15% for the rest of their period",
         1, D("-7.98"), D("-7.98")),
    ]
    assert third.invoice.total == D("155.44")
    assert ledger(account) == [
        (CreditEntry.VOLUME_ADJUSTMENT, D("26.84"), "PB-TEST-2027-000002"),
        (CreditEntry.APPLIED, D("-26.84"), "PB-TEST-2027-000002"),
        (CreditEntry.VOLUME_ADJUSTMENT, D("7.98"), "PB-TEST-2027-000003"),
        (CreditEntry.APPLIED, D("-7.98"), "PB-TEST-2027-000003"),
    ]
    assert credit_balance(account) == D("0.00")
    assert {lic[5] for lic in licenses_of(account)} == {D("0.15")}

    advance(account, at(2027, 4, 10, 10))
    renewal = renewed_on(account, date(2027, 4, 10))
    # One invoice for the 10: $98.00 + $396.00 + $596.00 = $1,090.00, 15% = −$163.50: $926.50.
    assert lines_of(renewal) == [
        ("item", span("Basic", "monthly", date(2027, 4, 10), date(2027, 5, 10)), 2, D("49.00"), D("98.00")),
        ("item", span("Pro", "monthly", date(2027, 4, 10), date(2027, 5, 10)), 4, D("99.00"), D("396.00")),
        ("item", span("Premium", "monthly", date(2027, 4, 10), date(2027, 5, 10)), 4, D("149.00"), D("596.00")),
        ("volume_discount", "Volume discount 15% (10 active licenses)", 1, D("-163.50"), D("-163.50")),
    ]
    assert (renewal.number, renewal.status, renewal.subtotal, renewal.discount_total, renewal.total) == (
        "PB-TEST-2027-000004", PAID, D("1090.00"), D("163.50"), D("926.50"))
    assert set(licenses_of(account)) == {(tier, "monthly", ACTIVE, date(2027, 4, 10), date(2027, 5, 10), D("0.15"))
                                         for tier in ("basic", "pro", "premium")}
    # What each remembers it paid: list × 85%: $41.65, $84.15, $126.65.
    assert sorted({t.paid for t in LicenseTerm.objects.filter(invoice=renewal)}) == [D("41.65"), D("84.15"),
                                                                                    D("126.65")]
    # $396.00 + $32.91 + $155.44 + $926.50 = $1,510.85
    assert processor_money() == 151085


# --- 3. cancellations drop the bracket at renewal; nothing paid is clawed back ---------------------------

def test_cancellations_drop_the_bracket_at_renewal_and_claw_nothing_back(on_clock, alice, advance):
    account = on_clock(at(2027, 5, 5, 10))
    buy_directly(account, alice, tier="basic", period="annual")  # $490.00, renews May 5, 2028
    pros = buy_directly(account, alice, quantity=9)
    # 9 × $99.00 = $891.00; 10 active → 15%: −$133.65. The Basic annual moves 0% → 15% for all its 366 days
    # (2028 is leap): 15% × 490 × 366 / 366 = $73.50, used at once: $891.00 − $133.65 − $73.50 = $683.85.
    assert pros.invoice.total == D("683.85")
    assert ledger(account) == [(CreditEntry.VOLUME_ADJUSTMENT, D("73.50"), "PB-TEST-2027-000002"),
                               (CreditEntry.APPLIED, D("-73.50"), "PB-TEST-2027-000002")]
    monthly = list(pros.licenses.order_by("pk"))

    advance(account, at(2027, 5, 20, 10))
    for lic in monthly[:3]:
        license_cancel(account=account, license=lic)
    advance(account, at(2027, 6, 5, 10))
    june = renewed_on(account, date(2027, 6, 5))
    # 6 Pro renew; the bracket counts them and the Basic annual (7 → 10%): 6 × $99.00 = $594.00 − $59.40 = $534.60.
    assert lines_of(june) == [
        ("item", span("Pro", "monthly", date(2027, 6, 5), date(2027, 7, 5)), 6, D("99.00"), D("594.00")),
        ("volume_discount", "Volume discount 10% (7 active licenses)", 1, D("-59.40"), D("-59.40")),
    ]
    assert (june.number, june.status, june.total) == ("PB-TEST-2027-000003", PAID, D("534.60"))
    cancelled = License.objects.filter(pk__in=[lic.pk for lic in monthly[:3]])
    assert {(lic.status, lic.ended_on, lic.period_end) for lic in cancelled} == {
        (EXPIRED, date(2027, 6, 5), date(2027, 6, 5))}

    advance(account, at(2027, 6, 20, 10))
    for lic in monthly[3:6]:
        license_cancel(account=account, license=lic)
    advance(account, at(2028, 5, 4, 10))
    # Until its billing date the annual keeps the 15% it was moved to: nothing paid is taken back.
    assert licenses_of(account, period="annual") == [("basic", "annual", ACTIVE, date(2027, 5, 5), date(2028, 5, 5),
                                                      D("0.15"))]
    advance(account, at(2028, 5, 5, 10))
    # From Jul 5 three Pro and the annual: 4 → no bracket, 3 × $99.00 = $297.00, ten months to Apr 5, 2028.
    july = renewed_on(account, date(2027, 7, 5))
    assert lines_of(july) == [("item", span("Pro", "monthly", date(2027, 7, 5), date(2027, 8, 5)), 3, D("99.00"),
                               D("297.00"))]
    monthly_dates = [date(2027, m, 5) for m in range(7, 13)] + [date(2028, m, 5) for m in range(1, 5)]
    assert [renewed_on(account, day).total for day in monthly_dates] == [D("297.00")] * 10
    # May 5, 2028: the monthly and the annual renew on one invoice: $297.00 + $490.00 = $787.00, no bracket.
    may = renewed_on(account, date(2028, 5, 5))
    assert lines_of(may) == [
        ("item", span("Pro", "monthly", date(2028, 5, 5), date(2028, 6, 5)), 3, D("99.00"), D("297.00")),
        ("item", span("Basic", "annual", date(2028, 5, 5), date(2029, 5, 5)), 1, D("490.00"), D("490.00")),
    ]
    assert (may.number, may.status, may.total, may.service_to) == ("PB-TEST-2028-000005", PAID, D("787.00"),
                                                                   date(2029, 5, 5))
    # Nothing clawed back: no credit note, the ledger as it was, the paid invoices untouched.
    assert not Invoice.objects.filter(account=account, kind=Invoice.CREDIT_NOTE).exists()
    assert ledger(account)[2:] == []
    assert invoices_of(account)[:3] == [
        ("PB-TEST-2027-000001", Invoice.PURCHASE, date(2027, 5, 5), PAID, D("490.00")),
        ("PB-TEST-2027-000002", Invoice.PURCHASE, date(2027, 5, 5), PAID, D("683.85")),
        ("PB-TEST-2027-000003", Invoice.RENEWAL, date(2027, 6, 5), PAID, D("534.60")),
    ]
    # The annual kept its 15% to its billing date, then renewed at the bracket of the day (none).
    terms = LicenseTerm.objects.filter(license__period="annual", license__account=account).order_by("starts_on")
    assert [(t.kind, t.rate, t.paid) for t in terms] == [("purchase", D("0.00"), D("490.00")),
                                                        ("renewal", D("0.00"), D("490.00"))]
    assert licenses_of(account, status=EXPIRED) == [("pro", "monthly", EXPIRED, date(2027, 5, 5), date(2027, 6, 5),
                                                     D("0.15"))] * 3 + [
        ("pro", "monthly", EXPIRED, date(2027, 6, 5), date(2027, 7, 5), D("0.10"))] * 3
    assert licenses_of(account, status=ACTIVE) == [("basic", "annual", ACTIVE, date(2028, 5, 5), date(2029, 5, 5),
                                                    D(0))] + [
        ("pro", "monthly", ACTIVE, date(2028, 5, 5), date(2028, 6, 5), D(0))] * 3
    # $490.00 + $683.85 + $534.60 + 10 × $297.00 + $787.00 = $5,465.45
    assert processor_money() == 546545


# --- 4. annual groups across leap days -------------------------------------------------------------------

def test_annual_groups_bought_feb_28_and_feb_29_renew_together_then_apart_in_the_next_leap_year(on_clock, alice,
                                                                                                 advance):
    account = on_clock(at(2028, 2, 28, 10))
    pro = buy_directly(account, alice, period="annual", quantity=2)  # 2 × $990.00 = $1,980.00, renews Feb 28, 2029
    advance(account, at(2028, 2, 29, 10))
    basic = buy_directly(account, alice, tier="basic", period="annual", quantity=3)
    # 3 × $490.00 = $1,470.00; 5 active → 10%: −$147.00. The 2 Pro move to 10% for 365 of their 366 days
    # (Feb 28, 2028 → Feb 28, 2029): 10% × 990 × 365 / 366 = 98.7295 → $98.73 each, $197.46:
    # $1,470.00 − $147.00 − $197.46 = $1,125.54.
    assert lines_of(basic.invoice)[2:] == [
        ("volume_adjustment", "Volume discount adjustment: 2 active licenses move to 10% for the rest of their period",
         1, D("-197.46"), D("-197.46"))]
    assert basic.invoice.total == D("1125.54")
    # Bought Feb 29: its group counts from Feb 29, so it renews on Feb 28 in common years.
    assert {lic.period_end for lic in basic.licenses.all()} == {date(2029, 2, 28)}
    assert RenewalGroup.objects.get(licenses__in=basic.licenses.all()[:1]).anchor_on == date(2028, 2, 29)

    for year in (2029, 2030, 2031):  # a year at a time
        advance(account, at(year, 3, 1, 10))
        # Both groups fall on Feb 28: one invoice, 3 × $490.00 + 2 × $990.00 = $3,450.00, 10% = −$345.00.
        invoice = renewed_on(account, date(year, 2, 28))
        end = date(year + 1, 2, 28) if year < 2031 else date(2032, 2, 29)
        assert lines_of(invoice) == [
            ("item", span("Basic", "annual", date(year, 2, 28), end), 3, D("490.00"), D("1470.00")),
            ("item", span("Pro", "annual", date(year, 2, 28), date(year + 1, 2, 28)), 2, D("990.00"), D("1980.00")),
            ("volume_discount", "Volume discount 10% (5 active licenses)", 1, D("-345.00"), D("-345.00")),
        ]
        assert (invoice.number, invoice.status, invoice.total) == (f"PB-TEST-{year}-000001", PAID, D("3105.00"))
        assert Invoice.objects.filter(account=account, year=year).count() == 1
    # Since Feb 28, 2031 the groups part: the one from Feb 29 waits for the leap day.
    assert licenses_of(account) == [("pro", "annual", ACTIVE, date(2031, 2, 28), date(2032, 2, 28), D("0.10"))] * 2 + [
        ("basic", "annual", ACTIVE, date(2031, 2, 28), date(2032, 2, 29), D("0.10"))] * 3

    advance(account, at(2032, 3, 1, 10))
    # Feb 28, 2032: the 2 Pro; the 3 Basic (due Feb 29) still count: 5 → 10%, $1,980.00 − $198.00 = $1,782.00.
    feb_28 = renewed_on(account, date(2032, 2, 28))
    assert lines_of(feb_28) == [
        ("item", span("Pro", "annual", date(2032, 2, 28), date(2033, 2, 28)), 2, D("990.00"), D("1980.00")),
        ("volume_discount", "Volume discount 10% (5 active licenses)", 1, D("-198.00"), D("-198.00")),
    ]
    # Feb 29, 2032: the 3 Basic, the Pro counting too: $1,470.00 − $147.00 = $1,323.00, to Feb 28, 2033.
    feb_29 = renewed_on(account, date(2032, 2, 29))
    assert lines_of(feb_29) == [
        ("item", span("Basic", "annual", date(2032, 2, 29), date(2033, 2, 28)), 3, D("490.00"), D("1470.00")),
        ("volume_discount", "Volume discount 10% (5 active licenses)", 1, D("-147.00"), D("-147.00")),
    ]
    assert invoices_of(account)[-2:] == [
        ("PB-TEST-2032-000001", Invoice.RENEWAL, date(2032, 2, 28), PAID, D("1782.00")),
        ("PB-TEST-2032-000002", Invoice.RENEWAL, date(2032, 2, 29), PAID, D("1323.00")),
    ]
    assert {lic.period_end for lic in License.objects.filter(account=account)} == {date(2033, 2, 28)}
    assert len(pro.licenses.all()[0].terms.all()) == 5  # the purchase and four renewals
    assert ledger(account) == [(CreditEntry.VOLUME_ADJUSTMENT, D("197.46"), "PB-TEST-2028-000002"),
                               (CreditEntry.APPLIED, D("-197.46"), "PB-TEST-2028-000002")]
    # $1,980.00 + $1,125.54 + 3 × $3,105.00 + $1,782.00 + $1,323.00 = $15,525.54
    assert processor_money() == 1552554


def test_the_annual_reminder_quotes_the_amount_the_renewal_charges(on_clock, alice, advance, mailoutbox):
    account = on_clock(at(2027, 3, 1, 10))
    buy_directly(account, alice, period="annual", quantity=4)  # 4 Pro annual, renew Mar 1, 2028
    advance(account, at(2027, 3, 2, 10))
    buy_directly(account, alice, tier="basic", period="annual")  # 5 active; renews Mar 2, 2028
    advance(account, at(2028, 3, 2, 10))
    # Mar 2, 2028: the Basic renews while the 4 Pro (renewed the day before) stay: 5 → 10%, $490.00 − $49.00.
    assert renewed_on(account, date(2028, 3, 2)).total == D("441.00")
    reminders = [m.body for m in mailoutbox if m.subject == "Your annual Pictor licenses renew in 30 days"]
    # Mar 1: 4 × $990.00 = $3,960.00 − 10% = $3,564.00 (the Basic counts: it is active after Mar 1).
    assert reminders == ["On Mar 1, 2028 your annual licenses renew for $3,564.00, charged to your default card. "
                         "To change anything, visit the Billing area before then.",
                         "On Mar 2, 2028 your annual licenses renew for $441.00, charged to your default card. "
                         "To change anything, visit the Billing area before then."]


# --- 5. dunning ------------------------------------------------------------------------------------------

def test_a_declined_renewal_is_paid_by_a_retry_once_a_working_card_is_the_default(on_clock, alice, advance,
                                                                                 mailoutbox):
    account = on_clock(at(2027, 3, 10, 9))
    buy_directly(account, alice, quantity=2)  # 2 Pro monthly on the Visa: $198.00
    declining = add_card(account, DECLINES_CHARGES)
    card_make_default(account=account, card=declining)

    advance(account, at(2027, 4, 10, 12))  # F = Apr 10: the renewal, 2 × $99.00 = $198.00, is declined
    renewal = Renewal.objects.get(account=account)
    invoice = renewal.invoice
    assert (invoice.number, invoice.status, invoice.total) == ("PB-TEST-2027-000002", OPEN, D("198.00"))
    assert (renewal.status, renewal.failed_attempts, renewal.first_failed_on, renewal.next_retry_on) == (
        Renewal.PAST_DUE, 1, date(2027, 4, 10), date(2027, 4, 11))
    assert licenses_of(account) == [("pro", "monthly", PAST_DUE, date(2027, 4, 10), date(2027, 5, 10), D(0))] * 2

    advance(account, at(2027, 4, 12, 10))  # F+1 declined too; the next try is F+3
    renewal.refresh_from_db()
    assert (renewal.status, renewal.failed_attempts, renewal.next_retry_on) == (Renewal.PAST_DUE, 2, date(2027, 4, 13))
    visa = add_card(account, VISA)
    card_make_default(account=account, card=visa)

    advance(account, at(2027, 4, 13, 12))  # F+3, on the new default card: paid
    renewal.refresh_from_db()
    invoice.refresh_from_db()
    assert (renewal.status, renewal.next_retry_on, invoice.status) == (Renewal.PAID, None, PAID)
    assert licenses_of(account) == [("pro", "monthly", ACTIVE, date(2027, 4, 10), date(2027, 5, 10), D(0))] * 2
    attempts = PaymentAttempt.objects.filter(invoice=invoice).order_by("pk")
    assert [(a.status, a.card_id, a.idempotency_key, a.created_at.date()) for a in attempts] == [
        (PaymentAttempt.FAILED, declining.pk, f"invoice:{invoice.pk}:1", date(2027, 4, 10)),
        (PaymentAttempt.FAILED, declining.pk, f"invoice:{invoice.pk}:2", date(2027, 4, 11)),
        (PaymentAttempt.SUCCEEDED, visa.pk, f"invoice:{invoice.pk}:3", date(2027, 4, 13)),
    ]
    assert [m.subject for m in mailoutbox] == ["Your Pictor payment failed", "Your Pictor payment failed",
                                               "Receipt for invoice PB-TEST-2027-000002"]

    advance(account, at(2027, 5, 10, 12))  # and the next month renews on the new card as usual
    assert renewed_on(account, date(2027, 5, 10)).status == PAID
    assert ledger(account) == []
    assert processor_money() == 3 * 19800  # the purchase and two renewals of $198.00; declines take nothing


def test_after_the_last_failed_retry_the_licenses_end_and_the_credit_it_used_returns(on_clock, alice, advance,
                                                                                    mailoutbox):
    account = on_clock(at(2027, 3, 10, 9))
    buy_directly(account, alice, quantity=2)  # 2 Pro monthly, $198.00
    buy_directly(account, alice, tier="basic", period="annual")  # $490.00, renews Mar 10, 2028
    admin_credit(account, D("50.00"))
    lease, _ = event_start(account=account, event_id="spring-gala", event_tier="pro", device_id="booth-1")
    card_make_default(account=account, card=add_card(account, DECLINES_CHARGES))

    advance(account, at(2027, 4, 10, 12))
    invoice = renewed_on(account, date(2027, 4, 10))
    # 2 × $99.00 = $198.00 (3 active: no bracket), $50.00 of credit first: $148.00 to charge.
    assert lines_of(invoice) == [
        ("item", span("Pro", "monthly", date(2027, 4, 10), date(2027, 5, 10)), 2, D("99.00"), D("198.00")),
        ("credit_applied", "Credit balance applied", 1, D("-50.00"), D("-50.00")),
    ]
    assert (invoice.number, invoice.status, invoice.credit_applied, invoice.total) == (
        "PB-TEST-2027-000003", OPEN, D("50.00"), D("148.00"))
    assert credit_balance(account) == D("0.00")

    advance(account, at(2027, 4, 14, 12))  # F+1 and F+3 declined: the last notice names F+5
    renewal = Renewal.objects.get(account=account)
    assert (renewal.status, renewal.failed_attempts, renewal.next_retry_on) == (Renewal.PAST_DUE, 3, date(2027, 4, 15))
    assert licenses_of(account, period="monthly") == [("pro", "monthly", PAST_DUE, date(2027, 4, 10),
                                                       date(2027, 5, 10), D(0))] * 2

    advance(account, at(2027, 4, 15, 12))  # F+5 declined: the end
    renewal.refresh_from_db()
    invoice.refresh_from_db()
    assert (renewal.status, renewal.failed_attempts, renewal.next_retry_on) == (Renewal.FAILED, 4, None)
    assert invoice.status == FAILED
    note = Invoice.objects.get(refers_to=invoice)
    assert (note.number, note.kind, note.issued_on, note.status, note.total, note.title) == (
        "PB-TEST-2027-000004", Invoice.CREDIT_NOTE, date(2027, 4, 15), CREDITED, D("-148.00"), "Credit note")
    assert lines_of(note) == [("credit", "Cancels unpaid renewal PB-TEST-2027-000003", 1, D("-148.00"),
                               D("-148.00"))]
    assert ledger(account) == [(CreditEntry.ADMIN_CREDIT, D("50.00"), None),
                               (CreditEntry.APPLIED, D("-50.00"), "PB-TEST-2027-000003"),
                               (CreditEntry.RETURNED, D("50.00"), "PB-TEST-2027-000003")]
    assert credit_balance(account) == D("50.00")
    # Paid until the billing date: the 5 past-due days are not billed; the annual is untouched.
    ended = License.objects.filter(account=account, period="monthly")
    assert {(lic.status, lic.ended_on, lic.period_end) for lic in ended} == {(EXPIRED, date(2027, 4, 10),
                                                                              date(2027, 4, 10))}
    assert {t.paid for t in LicenseTerm.objects.filter(invoice=invoice)} == {D("0.00")}
    assert licenses_of(account, period="annual") == [("basic", "annual", ACTIVE, date(2027, 3, 10),
                                                      date(2028, 3, 10), D(0))]
    assert EventLease.objects.get(pk=lease.pk).stopped_at == at(2027, 4, 15)
    account.refresh_from_db()
    assert account.monthly_anchor_day is None
    assert RenewalGroup.objects.get(account=account, period="monthly").ended_on == date(2027, 4, 10)
    assert [a.status for a in PaymentAttempt.objects.filter(invoice=invoice)] == [PaymentAttempt.FAILED] * 4
    assert [m.subject for m in mailoutbox] == ["Your Pictor payment failed"] * 3 + [
        "Last notice: your Pictor licenses will end", "Your Pictor licenses have ended"]
    with pytest.raises(NothingToPay):
        renewal_pay_now(account=account, renewal=renewal)

    # The next monthly purchase sets a new anchor, at full price, and the returned credit pays first.
    card_make_default(account=account, card=add_card(account, VISA))
    advance(account, at(2027, 4, 20, 10))
    again = buy_directly(account, alice)
    assert lines_of(again.invoice) == [("item", "Pro license, monthly", 1, D("99.00"), D("99.00")),
                                       ("credit_applied", "Credit balance applied", 1, D("-50.00"), D("-50.00"))]
    assert again.invoice.total == D("49.00")
    account.refresh_from_db()
    assert (account.monthly_anchor_day, again.licenses.get().period_end) == (20, date(2027, 5, 20))
    assert credit_balance(account) == D("0.00")
    # $198.00 + $490.00 + $49.00: the declined renewal took nothing
    assert processor_money() == 73700


# --- 6. credit pays a whole renewal ----------------------------------------------------------------------

def test_credit_pays_a_whole_renewal_with_no_charge_and_what_is_left_pays_the_next(on_clock, alice, advance,
                                                                                  mailoutbox):
    account = on_clock(at(2027, 6, 15, 10))
    buy_directly(account, alice, tier="basic", quantity=3)  # 3 × $49.00 = $147.00
    grant = admin_credit(account, D("200.00"))

    advance(account, at(2027, 7, 15, 10))
    july = renewed_on(account, date(2027, 7, 15))
    # $147.00 due, all of it from the $200.00 credit: $0.00 charged, paid at once, $53.00 left.
    assert lines_of(july) == [
        ("item", span("Basic", "monthly", date(2027, 7, 15), date(2027, 8, 15)), 3, D("49.00"), D("147.00")),
        ("credit_applied", "Credit balance applied", 1, D("-147.00"), D("-147.00")),
    ]
    assert (july.number, july.status, july.credit_applied, july.total) == ("PB-TEST-2027-000002", PAID, D("147.00"),
                                                                          D("0.00"))
    assert Renewal.objects.get(invoice=july).status == Renewal.PAID
    assert not PaymentAttempt.objects.filter(invoice=july).exists()
    assert processor_money() == 14700  # only the purchase
    assert [m.subject for m in mailoutbox] == ["Receipt for invoice PB-TEST-2027-000002"]
    assert credit_balance(account) == D("53.00")

    advance(account, at(2027, 8, 15, 10))
    august = renewed_on(account, date(2027, 8, 15))
    # $147.00 − the $53.00 left = $94.00 on the card.
    assert lines_of(august)[1:] == [("credit_applied", "Credit balance applied", 1, D("-53.00"), D("-53.00"))]
    assert (august.status, august.total) == (PAID, D("94.00"))
    assert ledger(account) == [(CreditEntry.ADMIN_CREDIT, D("200.00"), None),
                               (CreditEntry.APPLIED, D("-147.00"), "PB-TEST-2027-000002"),
                               (CreditEntry.APPLIED, D("-53.00"), "PB-TEST-2027-000003")]
    assert grant.invoice_id is None and credit_balance(account) == D("0.00")
    assert licenses_of(account) == [("basic", "monthly", ACTIVE, date(2027, 8, 15), date(2027, 9, 15), D(0))] * 3
    assert processor_money() == 14700 + 9400


# --- 7. a billing run that missed three days -------------------------------------------------------------

def test_a_run_that_missed_three_days_bills_each_date_at_its_own_prices_in_the_year_it_issues(prices, alice):
    # A test clock never misses a day, so this is the daily run itself, over a real account whose clock
    # stands where the test puts it: the run missed Dec 30, Dec 31 and Jan 1, and runs on Jan 2, 2028.
    account = alice.account
    add_card(account)
    buy_directly(account, alice, tier="premium", period="annual", now=at(2026, 12, 31, 10))  # renews Dec 31, 2027
    buy_directly(account, alice, tier="basic", period="annual", now=at(2027, 1, 1, 10))  # renews Jan 1, 2028
    buy_directly(account, alice, quantity=2, now=at(2027, 11, 30, 10))  # 2 Pro monthly, anchor 30: Dec 30
    new_prices = {("basic", "annual"): "520.00", ("pro", "monthly"): "109.00", ("premium", "annual"): "1590.00"}
    for (tier, period), price in new_prices.items():
        PriceListEntry.objects.create(tier=tier, period=period, unit_price=D(price), effective_from=date(2028, 1, 1))

    clock_set(account, at(2028, 1, 2, 6))
    summary = billing_run(upto=date(2028, 1, 2), concurrency=1)
    # Oldest first, each priced on its billing date, all issued Jan 2, 2028 and numbered in 2028; 4 active
    # licenses on each date, no bracket. Dec 30: 2 × $99.00 (the $109.00 starts Jan 1). Dec 31: $1,490.00.
    # Jan 1: the new $520.00.
    assert (summary.renewed, summary.charged) == (3, D("198.00") + D("1490.00") + D("520.00"))
    renewals = Renewal.objects.filter(account=account).order_by("invoice_id")
    assert [(r.billing_date, r.status) for r in renewals] == [
        (date(2027, 12, 30), Renewal.PAID), (date(2027, 12, 31), Renewal.PAID), (date(2028, 1, 1), Renewal.PAID)]
    assert invoices_of(account)[3:] == [
        ("PB-2028-000001", Invoice.RENEWAL, date(2028, 1, 2), PAID, D("198.00")),
        ("PB-2028-000002", Invoice.RENEWAL, date(2028, 1, 2), PAID, D("1490.00")),
        ("PB-2028-000003", Invoice.RENEWAL, date(2028, 1, 2), PAID, D("520.00")),
    ]
    assert lines_of(renewed_on(account, date(2027, 12, 30))) == [
        ("item", span("Pro", "monthly", date(2027, 12, 30), date(2028, 1, 30)), 2, D("99.00"), D("198.00"))]
    assert lines_of(renewed_on(account, date(2027, 12, 31))) == [
        ("item", span("Premium", "annual", date(2027, 12, 31), date(2028, 12, 31)), 1, D("1490.00"), D("1490.00"))]
    assert lines_of(renewed_on(account, date(2028, 1, 1))) == [
        ("item", span("Basic", "annual", date(2028, 1, 1), date(2029, 1, 1)), 1, D("520.00"), D("520.00"))]
    assert [(i.service_from, i.service_to) for i in Invoice.objects.filter(renewal__account=account)
            .order_by("pk")] == [(date(2027, 12, 30), date(2028, 1, 30)), (date(2027, 12, 31), date(2028, 12, 31)),
                                 (date(2028, 1, 1), date(2029, 1, 1))]
    assert InvoiceSequence.objects.get(series="", year=2027).last_number == 2  # the two 2027 purchases only
    assert sorted((lic.tier, lic.period_start, lic.period_end, lic.list_price)
                  for lic in License.objects.filter(account=account)) == [
        ("basic", date(2028, 1, 1), date(2029, 1, 1), D("520.00")),
        ("premium", date(2027, 12, 31), date(2028, 12, 31), D("1490.00")),
        ("pro", date(2027, 12, 30), date(2028, 1, 30), D("99.00")),
        ("pro", date(2027, 12, 30), date(2028, 1, 30), D("99.00"))]

    assert billing_run(upto=date(2028, 1, 2), concurrency=1).renewed == 0  # run again: nothing twice
    assert Invoice.objects.filter(account=account).count() == 6

    clock_set(account, at(2028, 1, 30, 6))
    billing_run(upto=date(2028, 1, 30), concurrency=1)
    january = renewed_on(account, date(2028, 1, 30))  # the Pro's first month at the new price: 2 × $109.00
    assert (january.number, january.status, january.total) == ("PB-2028-000004", PAID, D("218.00"))
    assert ledger(account) == []
    # $1,490.00 + $490.00 + $198.00 + $198.00 + $1,490.00 + $520.00 + $218.00 = $4,604.00
    assert processor_money() == 460400
