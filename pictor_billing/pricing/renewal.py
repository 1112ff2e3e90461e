"""Pricing a renewal: one account's licenses renewing on one billing date, in one invoice.

docs/rules.md, "Renewals": the bracket on date D counts the licenses renewing on D plus the other
licenses active after D that are not cancelled (past-due ones count; those cancelled to end on D
expire instead and count for nothing); prices are those in force on D; no coupon; the credit
balance applies first. Each renewed license remembers the rate it was charged.
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from pictor_billing.money import ZERO, to_money
from pictor_billing.pricing.base import (
    ANNUAL,
    MONTHLY,
    PERIOD_LABELS,
    PERIODS,
    TIER_LABELS,
    TIERS,
    PricingError,
    QuoteLine,
    percent,
    volume_rate,
)
from pictor_billing.pricing.calendar import add_years, anchor_date, day_words, shift_month


@dataclass(frozen=True)
class RenewingLicense:
    """A license renewing on the billing date, as it renews (a scheduled downgrade already applied).

    `count`: this many licenses of one shape, `id` the first of them. The billing run quotes one
    license each (count 1: it records what each one renews at); the Licenses tab's next-renewal line
    quotes shapes, so 1,000 alike licenses price as one entry.
    """

    id: int
    tier: str
    period: str
    renews_to: date  # the end of the period it renews for: its next billing date
    # Annual -> monthly joining the anchor mid-cycle: charged these days of its cycle, pro-rata.
    prorata_days: int | None = None
    cycle_days: int | None = None
    count: int = 1


@dataclass(frozen=True)
class RenewedLicense:
    """What one license renews at: its list price, the bracket's rate, what it pays for the period."""

    id: int
    tier: str
    period: str
    list_price: Decimal
    rate: Decimal
    paid: Decimal
    renews_to: date
    count: int = 1  # licenses of this shape (RenewingLicense.count)


@dataclass(frozen=True)
class RenewalQuote:
    """Every figure of one account's renewal on one date."""

    billing_date: date
    count: int  # licenses in the bracket
    rate: Decimal
    subtotal: Decimal
    volume_discount: Decimal
    credit_balance: Decimal
    credit_applied: Decimal
    total_due: Decimal
    licenses: tuple[RenewedLicense, ...]
    lines: tuple[QuoteLine, ...]

    @property
    def choice(self) -> tuple:
        """What renews, for the quote's fingerprint."""
        return ("renewal", self.billing_date.isoformat(), tuple(lic.id for lic in self.licenses))

    @property
    def service_to(self) -> date:
        """The end of the longest period it bills (the service period printed on the invoice)."""
        return max(lic.renews_to for lic in self.licenses)

    @property
    def quantity(self) -> int:
        return sum(lic.count for lic in self.licenses)

    @property
    def what(self) -> str:
        """What renews, in words: "3 Pro monthly, 1 Basic annual"."""
        counts: dict[tuple[str, str], int] = {}
        for lic in self.licenses:
            counts[(lic.tier, lic.period)] = counts.get((lic.tier, lic.period), 0) + lic.count
        return ", ".join(f"{count} {TIER_LABELS[tier]} {period}" for (tier, period), count in counts.items())


def next_monthly_date(billing_date: date, anchor_day: int) -> date:
    """The monthly billing date after this one, on the anchor day (the last day of a short month stands in)."""
    return anchor_date(*shift_month(billing_date.year, billing_date.month, 1), anchor_day)


def next_annual_date(billing_date: date, anchor_on: date) -> date:
    """The anniversary of the group's first date after this billing date (bought Feb 29: Feb 28 in common
    years, Feb 29 in leap years: every date counts from the first one, never from the last)."""
    years = billing_date.year - anchor_on.year + 1
    while add_years(anchor_on, years) <= billing_date:
        years += 1
    return add_years(anchor_on, years)


def quote_renewal(
    *,
    billing_date: date,
    prices: dict[tuple[str, str], Decimal],
    renewing: list[RenewingLicense] | tuple[RenewingLicense, ...],
    others_active: int,
    credit_balance: Decimal = ZERO,
) -> RenewalQuote:
    """Price the renewal of these licenses on `billing_date`.

    `prices` are the entries in force on that date; `others_active` the account's other licenses
    active after it and not cancelled (past-due ones count). Lines: one per tier, period and
    service period (quantity × list price), the volume discount (rounded once on the subtotal),
    the credit balance applied; they sum to the total due.
    """
    if not renewing:
        raise PricingError("a renewal renews at least one license")
    if others_active < 0:
        raise PricingError("others_active cannot be negative")
    credit_balance = max(to_money(credit_balance), ZERO)
    count = sum(lic.count for lic in renewing) + others_active
    rate = volume_rate(count)
    groups: dict[tuple[str, str, date], list[RenewingLicense]] = {}
    for lic in renewing:
        if lic.tier not in TIERS or lic.period not in PERIODS:
            raise PricingError(f"cannot renew a {lic.tier} {lic.period} license")
        if lic.renews_to <= billing_date:
            raise PricingError("a renewal runs to a later date")
        if lic.prorata_days is not None and not 0 < lic.prorata_days < (lic.cycle_days or 0):
            raise PricingError("a pro-rata renewal charges part of its cycle")
        if lic.count < 1:
            raise PricingError("a renewing entry counts at least one license")
        groups.setdefault((lic.tier, lic.period, lic.renews_to, lic.prorata_days, lic.cycle_days), []).append(lic)
    lines, renewed = [], []
    order = {(tier, period): index for index, (tier, period) in
             enumerate((tier, period) for period in (MONTHLY, ANNUAL) for tier in TIERS)}
    for (tier, period, renews_to, days, cycle), members in sorted(
            groups.items(), key=lambda kv: (order[kv[0][:2]], kv[0][2], kv[0][3] or 0)):
        try:
            unit = to_money(prices[(tier, period)])
        except KeyError:
            raise PricingError(f"no price for {tier} {period} on {billing_date}") from None
        charged = unit if days is None else to_money(unit * days / cycle)
        prorata = "" if days is None else f" (pro-rata: {days} of {cycle} days)"
        quantity = sum(lic.count for lic in members)
        lines.append(QuoteLine(
            "item", f"{TIER_LABELS[tier]} license, {PERIOD_LABELS[period].lower()}: "
                    f"{day_words(billing_date)} – {day_words(renews_to)}{prorata}",
            quantity, charged, charged * quantity))
        paid = to_money(charged * (1 - rate))
        renewed += [RenewedLicense(lic.id, tier, period, unit, rate, paid, renews_to, lic.count) for lic in members]
    subtotal = sum((line.amount for line in lines), ZERO)
    discount = to_money(subtotal * rate)
    if discount:
        lines.append(QuoteLine("volume_discount", f"Volume discount {percent(rate)} ({count} active licenses)",
                               1, -discount, -discount))
    left = subtotal - discount
    credit_applied = min(credit_balance, left)
    if credit_applied:
        lines.append(QuoteLine("credit_applied", "Credit balance applied", 1, -credit_applied, -credit_applied))
    return RenewalQuote(
        billing_date=billing_date, count=count, rate=rate, subtotal=subtotal, volume_discount=discount,
        credit_balance=credit_balance, credit_applied=credit_applied, total_due=left - credit_applied,
        licenses=tuple(renewed), lines=tuple(lines),
    )
