"""Revenue figures against a small book worked out by hand (SPEC, Finance staff; finance/revenue.py).

Today is 2026-04-15. Real accounts A, B and C; T is a test account whose figures must never count.

A  L1: Pro monthly from Jan 10 at $99.00, rate 0; upgraded to Premium monthly on Mar 20 ($149.00).
   L2: Pro monthly from Jan 10 at $99.00, cancelled, expired on Mar 10.
B  L3: Premium annual from Feb 5 at $1,490.00, rate 0.10, paid $1,341.00 for Feb 5 2026 – Feb 5 2027.
   L4: Basic monthly from Mar 1 at $49.00, past due since Apr 1 (its renewal declined): still counts.
C  L5: Basic annual from Jan 20 at $490.00, rate 0; cancelled by support, expired on Mar 15.
T  five Premium monthly licenses at $149.00 and an annual term, a credit and tokens: all left out.

MRR (per account, then summed):
  Jan 31: A 99 + 99 = 198.00; C 490 / 12 = 40.8333… → 40.83.           MRR 238.83; new 238.83.
  Feb 28: A 198.00; B 1490 × 0.9 / 12 = 1341 / 12 = 111.75; C 40.83.    MRR 350.58; new 111.75.
  Mar 31: A 149.00 (L2 expired Mar 10, L1 now Premium): contraction −49.00;
          B 111.75 + 49.00 = 160.75: expansion +49.00; C expired Mar 15: churn −40.83.
          MRR 309.75 (= 350.58 + 49.00 − 49.00 − 40.83).
  Apr 15 (to date): as at Mar 31, 309.75, no movement.
Deferred revenue on Apr 15: only B's annual term is current (C's expired): days left Apr 15 2026 → Feb 5 2027
  = 15 + 31 + 30 + 31 + 31 + 30 + 31 + 30 + 31 + 31 + 5 = 296 of 365; 1341.00 × 296 / 365 = 1087.4958… → 1,087.50.
Credit balances: A +30.00 admin credit − 10.00 applied = 20.00; C +5.00 − 5.00 = 0 (not listed). Total 20.00.
Token liability (first in, first out):
  A: grant 50 ($0), top-up 500 for $45.00 (invoice $40.00 after $5.00 credit: paid 45.00, $0.09 each),
     usage 80 (50 grant + 30 of the 500), top-up 100 for $10.00 ($0.10 each), usage 400 (400 of the 470 left):
     70 × 0.09 + 100 × 0.10 = 6.30 + 10.00 = 16.30.
  B: grant 50, admin +20, usage 10: 60 left, all at $0 → 0.
  C: auto top-up 1,000 for $80.00 ($0.08 each), usage 250: 750 × 0.08 = 60.00.
  Total 76.30 in two accounts.
"""

import datetime
from decimal import Decimal as D

import pytest

from finance import revenue
from invoices.models import Invoice
from licenses.models import License
from payments.models import CreditEntry
from tests.factories import AccountFactory
from tests.finance.helpers import clocked_account_make, invoice_make, license_make
from tests.helpers import text
from tokens.models import TokenEntry

TODAY = datetime.date(2026, 4, 15)
d = datetime.date


def tokens(account, *entries):
    """Ledger entries (kind, amount, invoice) with their running balance."""
    balance = 0
    for kind, amount, invoice in entries:
        balance += amount
        TokenEntry.objects.create(account=account, kind=kind, amount=amount, balance_after=balance, invoice=invoice)


@pytest.fixture
def book(db):
    a, b, c = AccountFactory(name="A"), AccountFactory(name="B"), AccountFactory(name="C")
    t = clocked_account_make("T")
    license_make(a, tier="pro", period="monthly", purchased_on=d(2026, 1, 10), terms=[
        (d(2026, 1, 10), d(2026, 2, 10), "pro", "monthly", "99.00", "0.00", "99.00"),
        (d(2026, 2, 10), d(2026, 3, 10), "pro", "monthly", "99.00", "0.00", "99.00"),
        (d(2026, 3, 10), d(2026, 4, 10), "pro", "monthly", "99.00", "0.00", "99.00"),
        (d(2026, 3, 20), d(2026, 4, 10), "premium", "monthly", "149.00", "0.00", "33.87"),
        (d(2026, 4, 10), d(2026, 5, 10), "premium", "monthly", "149.00", "0.00", "149.00")])
    license_make(a, tier="pro", period="monthly", purchased_on=d(2026, 1, 10), status=License.EXPIRED,
                 ended_on=d(2026, 3, 10), terms=[
                     (d(2026, 1, 10), d(2026, 2, 10), "pro", "monthly", "99.00", "0.00", "99.00"),
                     (d(2026, 2, 10), d(2026, 3, 10), "pro", "monthly", "99.00", "0.00", "99.00")])
    license_make(b, tier="premium", period="annual", purchased_on=d(2026, 2, 5), terms=[
        (d(2026, 2, 5), d(2027, 2, 5), "premium", "annual", "1490.00", "0.10", "1341.00")])
    license_make(b, tier="basic", period="monthly", purchased_on=d(2026, 3, 1), status=License.PAST_DUE, terms=[
        (d(2026, 3, 1), d(2026, 4, 1), "basic", "monthly", "49.00", "0.00", "49.00")])
    license_make(c, tier="basic", period="annual", purchased_on=d(2026, 1, 20), status=License.EXPIRED,
                 ended_on=d(2026, 3, 15), terms=[
                     (d(2026, 1, 20), d(2027, 1, 20), "basic", "annual", "490.00", "0.00", "490.00")])
    for _ in range(5):
        license_make(t, tier="premium", period="monthly", purchased_on=d(2026, 1, 1), terms=[
            (d(2026, 4, 1), d(2026, 5, 1), "premium", "monthly", "149.00", "0.00", "149.00")])
    license_make(t, tier="pro", period="annual", purchased_on=d(2026, 1, 1), terms=[
        (d(2026, 1, 1), d(2027, 1, 1), "pro", "annual", "990.00", "0.00", "990.00")])

    CreditEntry.objects.create(account=a, kind=CreditEntry.ADMIN_CREDIT, amount=D("30.00"))
    CreditEntry.objects.create(account=a, kind=CreditEntry.APPLIED, amount=D("-10.00"))
    CreditEntry.objects.create(account=c, kind=CreditEntry.ADMIN_CREDIT, amount=D("5.00"))
    CreditEntry.objects.create(account=c, kind=CreditEntry.APPLIED, amount=D("-5.00"))
    CreditEntry.objects.create(account=t, kind=CreditEntry.ADMIN_CREDIT, amount=D("500.00"))

    standard = invoice_make(a, "40.00", kind=Invoice.TOP_UP, credit_applied="5.00")
    starter = invoice_make(a, "10.00", kind=Invoice.TOP_UP)
    large = invoice_make(c, "80.00", kind=Invoice.TOP_UP)
    pro = invoice_make(t, "350.00", kind=Invoice.TOP_UP)
    tokens(a, (TokenEntry.SIGNUP_GRANT, 50, None), (TokenEntry.TOP_UP, 500, standard), (TokenEntry.USAGE, -80, None),
           (TokenEntry.TOP_UP, 100, starter), (TokenEntry.USAGE, -400, None))
    tokens(b, (TokenEntry.SIGNUP_GRANT, 50, None), (TokenEntry.ADMIN_ADJUSTMENT, 20, None),
           (TokenEntry.USAGE, -10, None))
    tokens(c, (TokenEntry.AUTO_TOP_UP, 1000, large), (TokenEntry.USAGE, -250, None))
    tokens(t, (TokenEntry.TOP_UP, 5000, pro))
    return {"a": a, "b": b, "c": c}


def test_mrr_and_its_movements_month_by_month(book):
    months = revenue.mrr_months(TODAY)
    assert [(m.month, m.end, m.mrr, m.new, m.expansion, m.contraction, m.churn, m.paying_accounts)
            for m in months] == [
        (d(2026, 1, 1), d(2026, 1, 31), D("238.83"), D("238.83"), 0, 0, 0, 2),
        (d(2026, 2, 1), d(2026, 2, 28), D("350.58"), D("111.75"), 0, 0, 0, 3),
        (d(2026, 3, 1), d(2026, 3, 31), D("309.75"), 0, D("49.00"), D("-49.00"), D("-40.83"), 2),
        (d(2026, 4, 1), d(2026, 4, 15), D("309.75"), 0, 0, 0, 0, 2),
    ]
    assert months[-1].to_date and not months[0].to_date
    for before, after in zip(months, months[1:], strict=False):
        assert before.mrr + after.new + after.expansion + after.contraction + after.churn == after.mrr


def test_mrr_per_account_on_a_day(book):
    assert revenue.mrr_by_account(d(2026, 3, 31)) == {book["a"].pk: D("149.00"), book["b"].pk: D("160.75")}
    assert revenue.mrr_by_account(d(2026, 3, 9)) == {book["a"].pk: D("198.00"), book["b"].pk: D("160.75"),
                                                     book["c"].pk: D("40.83")}
    assert revenue.mrr_by_account(d(2025, 12, 31)) == {}


def test_deferred_revenue(book):
    assert revenue.deferred_revenue(TODAY) == D("1087.50")


def test_credit_balances(book):
    assert revenue.credit_balances() == [{"account_id": book["a"].pk, "name": "A", "balance": D("20.00")}]


def test_prepaid_token_liability_first_in_first_out(book):
    assert revenue.token_liability_by_account() == {book["a"].pk: D("16.30"), book["c"].pk: D("60.00")}


def test_the_page_shows_every_figure_with_its_definition_and_the_chart(finance_client, book, monkeypatch):
    monkeypatch.setattr(revenue.clock, "today", lambda account=None: TODAY)  # pictor_billing.clock, for the view
    body = text(finance_client.get("/finance/revenue/"))
    assert 'data-figure="mrr">$309.75' in body
    assert 'data-figure="deferred">$1,087.50' in body
    assert 'data-figure="credit">$20.00' in body
    assert 'data-figure="tokens">$76.30' in body
    assert ('data-month="2026-03" data-mrr="309.75" data-new="0.00" data-expansion="49.00" '
            'data-contraction="-49.00" data-churn="-40.83"') in body
    assert "<svg" in body and 'role="img"' in body and body.count('<g data-month="') == 4
    assert "$350.58" in body  # each bar carries its figure as text: readable without colour
    for definition in ["list price × (1 − its volume discount rate), divided by 12 if annual",
                       "days left ÷ days in the term", "first in first out", "Test accounts are left out"]:
        assert definition in body


def test_no_licenses_no_chart(finance_client):
    body = text(finance_client.get("/finance/revenue/"))
    assert "No licenses yet" in body and "<svg" not in body.split("MRR per month")[1]
