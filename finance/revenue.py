"""Revenue figures for the finance area, test accounts left out (SPEC, Finance staff). Each is defined here
and in the page's help text, and checked against a hand-computed book in tests/finance/test_revenue.py.

- **MRR of an account at a month's end**: for each of its licenses not expired on that day (past due
  and cancelling included), list price × (1 − its rate), divided by 12 if annual; coupons, pro-rata,
  credits and tokens left out. The price, rate and period are those of the license's latest term
  begun on or before that day (its current ones if it has no term). Summed exactly per account, then
  rounded half-up to the cent once; the total MRR is the sum of the accounts' MRR. The current month
  is measured today ("to date").
- **Movement** of a month, per account, from the previous month's end to this one's: new (from $0),
  churn (to $0), otherwise expansion (up) or contraction (down). Last MRR + new + expansion −
  contraction − churn = this MRR.
- **Deferred revenue** today: for each license's current annual term, what was paid for it × days
  left ÷ days in the term, rounded half-up per license.
- **Credit balances**: each account's credit ledger summed (what it may still spend instead of paying).
- **Prepaid token liability**: the unspent tokens valued at the price paid for them, first in first
  out: a top-up's lot is worth what its invoice charged before credit (subtotal − discounts), spread
  evenly over its tokens; grants and admin additions are worth $0; spending takes the oldest lots
  first. Rounded half-up to the cent once per account.
"""

import bisect
import datetime
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum

from licenses.models import License, LicenseTerm
from payments.models import CreditEntry
from pictor_billing import clock
from pictor_billing.money import ZERO, format_usd, to_money
from tokens.models import TokenEntry

ANNUAL = "annual"
PAID_LOTS = {TokenEntry.TOP_UP, TokenEntry.AUTO_TOP_UP}
MONTHS_SHOWN = 24


def month_end(day: datetime.date) -> datetime.date:
    """The last day of `day`'s month."""
    first_next = (day.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
    return first_next - datetime.timedelta(days=1)


def month_add(first: datetime.date, months: int) -> datetime.date:
    """The first day of the month `months` after (or before) the month starting on `first`."""
    index = first.year * 12 + first.month - 1 + months
    return datetime.date(index // 12, index % 12 + 1, 1)


def license_monthly(list_price: Decimal, rate: Decimal, period: str) -> Decimal:
    """One license's monthly recurring revenue, exact (not rounded)."""
    value = list_price * (1 - rate)
    return value / 12 if period == ANNUAL else value


@dataclass
class _License:
    account_id: int
    purchased_on: datetime.date
    ended_on: datetime.date | None
    current: tuple[str, Decimal, Decimal]  # (period, list price, rate) as it is now
    term_starts: list[datetime.date]
    terms: list[tuple[str, Decimal, Decimal]]

    def monthly_on(self, day: datetime.date) -> Decimal:
        """Its MRR on `day`: zero before it was bought or once it has expired."""
        if self.purchased_on > day or (self.ended_on is not None and self.ended_on <= day):
            return ZERO
        index = bisect.bisect_right(self.term_starts, day) - 1
        period, list_price, rate = self.terms[index] if index >= 0 else self.current
        return license_monthly(list_price, rate, period)


def _licenses() -> list[_License]:
    """Every license of a real account with its terms (two queries)."""
    licenses = {}
    for row in License.objects.filter(account__is_test_account=False).values_list(
            "pk", "account_id", "purchased_on", "status", "ended_on", "period_end", "period", "list_price",
            "discount_rate").iterator(chunk_size=2000):
        pk, account_id, purchased_on, status, ended_on, period_end, period, list_price, rate = row
        if ended_on is None and status == License.EXPIRED:
            ended_on = period_end
        licenses[pk] = _License(account_id, purchased_on, ended_on, (period, list_price, rate), [], [])
    for license_id, starts_on, period, list_price, rate in LicenseTerm.objects.filter(
            license__account__is_test_account=False).order_by("license_id", "starts_on", "pk").values_list(
            "license_id", "starts_on", "period", "list_price", "rate").iterator(chunk_size=2000):
        found = licenses.get(license_id)
        if found is not None:
            found.term_starts.append(starts_on)
            found.terms.append((period, list_price, rate))
    return list(licenses.values())


def mrr_by_account(day: datetime.date, licenses: list[_License] | None = None) -> dict[int, Decimal]:
    """Each real account's MRR on `day` (accounts at $0 left out)."""
    exact: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for found in _licenses() if licenses is None else licenses:
        value = found.monthly_on(day)
        if value:
            exact[found.account_id] += value
    return {account_id: to_money(value) for account_id, value in exact.items() if to_money(value)}


@dataclass
class Month:
    month: datetime.date  # its first day
    end: datetime.date  # its last day, or today for the current month
    mrr: Decimal
    new: Decimal
    expansion: Decimal
    contraction: Decimal  # shown negative
    churn: Decimal  # shown negative
    paying_accounts: int

    @property
    def to_date(self) -> bool:
        return self.end != month_end(self.end)


def mrr_months(today: datetime.date | None = None, months: int = MONTHS_SHOWN) -> list[Month]:
    """MRR at each month's end and its movement, from the first month with a license (at most `months`)."""
    today = today or clock.today()
    licenses = _licenses()
    if not licenses:
        return []
    first = max(min(found.purchased_on for found in licenses).replace(day=1),
                month_add(today.replace(day=1), -(months - 1)))
    result, month = [], first
    before = mrr_by_account(first - datetime.timedelta(days=1), licenses)
    while month <= today:
        end = min(month_end(month), today)
        now = mrr_by_account(end, licenses)
        new = expansion = contraction = churn = ZERO
        for account_id in before.keys() | now.keys():
            was, is_ = before.get(account_id, ZERO), now.get(account_id, ZERO)
            if not was:
                new += is_
            elif not is_:
                churn -= was
            elif is_ > was:
                expansion += is_ - was
            else:
                contraction -= was - is_
        result.append(Month(month, end, sum(now.values(), ZERO), new, expansion, contraction, churn, len(now)))
        before, month = now, month_add(month, 1)
    return result


def deferred_revenue(today: datetime.date | None = None) -> Decimal:
    """The unused part of the current prepaid annual terms of real accounts' licenses, today."""
    today = today or clock.today()
    terms = (LicenseTerm.objects.filter(license__account__is_test_account=False, period=ANNUAL,
                                        starts_on__lte=today, ends_on__gt=today)
             .exclude(license__status=License.EXPIRED, license__ended_on__lte=today)
             .order_by("license_id", "-starts_on", "-pk").values_list("license_id", "starts_on", "ends_on", "paid"))
    total, seen = ZERO, set()
    for license_id, starts_on, ends_on, paid in terms.iterator(chunk_size=2000):
        if license_id in seen:  # only a license's latest annual term counts
            continue
        seen.add(license_id)
        total += to_money(paid * (ends_on - today).days / (ends_on - starts_on).days)
    return total


def credit_balances() -> list[dict]:
    """Real accounts holding credit, largest first: account_id, name, balance."""
    rows = (CreditEntry.objects.filter(account__is_test_account=False).values("account_id", "account__name")
            .annotate(balance=Sum("amount")).filter(balance__gt=0).order_by("-balance", "account__name"))
    return [{"account_id": row["account_id"], "name": row["account__name"], "balance": to_money(row["balance"])}
            for row in rows]


def token_liability_by_account() -> dict[int, Decimal]:
    """Each real account's unspent tokens at the price paid for them, first in first out (accounts at $0 left out)."""
    entries = (TokenEntry.objects.filter(account__is_test_account=False).order_by("account_id", "created_at", "pk")
               .values_list("account_id", "kind", "amount", "invoice__subtotal", "invoice__discount_total"))
    result: dict[int, Decimal] = {}
    account, lots = None, []

    def close():
        if account is not None:
            value = to_money(sum((price * left for price, left in lots), ZERO))
            if value:
                result[account] = value

    for account_id, kind, amount, subtotal, discount in entries.iterator(chunk_size=2000):
        if account_id != account:
            close()
            account, lots = account_id, []
        if amount > 0:
            paid = (subtotal - discount) if kind in PAID_LOTS and subtotal is not None else ZERO
            lots.append([paid / amount, amount])
            continue
        spend = -amount
        while spend and lots:
            take = min(spend, lots[0][1])
            lots[0][1] -= take
            spend -= take
            if not lots[0][1]:
                lots.pop(0)
    close()
    return result


@dataclass
class Chart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    bars: list[dict]
    ticks: list[dict]
    description: str


def _nice_step(maximum: int, steps: int = 4) -> int:
    """A round step (1, 2 or 5 × a power of ten) so that `steps` of them reach `maximum`."""
    raw, power = max(maximum // steps, 1), 1
    while power * 10 <= raw:
        power *= 10
    for multiple in (1, 2, 5, 10):
        if multiple * power * steps >= maximum:
            return multiple * power
    return 10 * power


def _short(amount: Decimal) -> str:
    """A bar's label: $950, $14.2k (the exact figure is in its tooltip and the table)."""
    if amount < 1000:
        return format_usd(amount.quantize(Decimal(1))).removesuffix(".00")
    return f"${(amount / 1000).quantize(Decimal('0.1'))}k"


def mrr_chart(months: list[Month]) -> Chart | None:
    """The MRR per month as bars with their value written on each (no colour needed to read it)."""
    if not months:
        return None
    width, height, left, right, top, bottom = 760, 280, 80, 748, 24, 236
    step = _nice_step(int(max(month.mrr for month in months)) + 1)
    scale_max = step * 4
    slot = Decimal(right - left) / len(months)
    bar_width = max(slot * Decimal("0.7"), Decimal(2))
    tenth = Decimal("0.1")

    def y(value) -> Decimal:  # drawing coordinates, in Decimal like everything near money
        return (bottom - (bottom - top) * Decimal(value) / scale_max).quantize(tenth)

    bars = []
    for index, month in enumerate(months):
        x = left + slot * index + (slot - bar_width) / 2
        bars.append({"x": x.quantize(tenth), "y": y(month.mrr), "width": bar_width.quantize(tenth),
                     "height": bottom - y(month.mrr), "label_x": (x + bar_width / 2).quantize(tenth),
                     "label_y": y(month.mrr) - 4, "month": month.month, "mrr": month.mrr,
                     "value": format_usd(month.mrr), "short": _short(month.mrr),
                     # every label while they fit, else every other one, the latest month's always
                     "show_label": len(months) <= 16 or index % 2 == (len(months) - 1) % 2})
    ticks = [{"y": y(step * i), "value": format_usd(Decimal(step * i)).replace(".00", "")} for i in range(5)]
    last = months[-1]
    description = (f"MRR from {months[0].month:%B %Y} to {last.month:%B %Y}: {format_usd(months[0].mrr)} "
                   f"to {format_usd(last.mrr)}{' (to date)' if last.to_date else ''}. The table after the chart "
                   "lists every month with its movements.")
    return Chart(width, height, left, right, top, bottom, bars, ticks, description)
