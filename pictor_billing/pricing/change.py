"""Pricing a plan change: licenses moved up a tier, or from monthly to annual, today, in one invoice.

docs/rules.md, "Upgrading and downgrading": each license's unused share of its current period is
credited — min(list price × (1 − its rate), what was paid for it this period) × days left ÷ days in
the period — and the new tier is charged for the same share at the account's current bracket
(list price × (1 − rate) × share); monthly → annual charges a full year from today instead. Each
figure is rounded once per license, then summed. No coupon applies; the credit balance applies
after the change's own credit. Only changes where neither tier nor period goes down are priced
here: the others wait for the billing date (`change_direction`).
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from pictor_billing.money import ZERO, to_money
from pictor_billing.pricing.base import (
    PERIOD_LABELS,
    PERIODS,
    TIER_LABELS,
    TIERS,
    PricingError,
    QuoteLine,
    volume_rate,
)
from pictor_billing.pricing.calendar import add_years, day_words

UP, DOWN, SAME = "up", "down", "same"


def change_direction(tier: str, period: str, new_tier: str, new_period: str) -> str:
    """UP when the change is immediate (something goes up, nothing goes down), SAME when nothing
    changes, DOWN when it waits for the billing date (a tier or the period goes down)."""
    if new_tier not in TIERS or new_period not in PERIODS:
        raise PricingError(f"there is no {new_tier} {new_period} license")
    tier_move = TIERS.index(new_tier) - TIERS.index(tier)
    period_move = PERIODS.index(new_period) - PERIODS.index(period)
    if tier_move < 0 or period_move < 0:
        return DOWN
    return UP if tier_move or period_move else SAME


@dataclass(frozen=True)
class ChangingLicense:
    """A license as it stands before the change."""

    id: int
    tier: str
    period: str
    list_price: Decimal  # its period's list price when it was last charged
    rate: Decimal  # the volume rate it was last charged at
    paid: Decimal  # what was paid for it this period (its latest term)
    period_start: date
    period_end: date  # its billing date


@dataclass(frozen=True)
class ChangedLicense:
    """What one license's change credits and charges, and how it stands after."""

    id: int
    tier: str
    period: str
    list_price: Decimal
    rate: Decimal
    credit: Decimal  # for its unused share, positive
    charge: Decimal
    starts_on: date
    renews_to: date  # its billing date after the change


@dataclass(frozen=True)
class ChangeQuote:
    """Every figure of one plan change, computed once: the modal shows it, the invoice prints it."""

    today: date
    tier: str
    period: str
    count: int  # active licenses: the bracket the new tier is charged at
    rate: Decimal
    credit_unused: Decimal
    charge_new: Decimal
    credit_balance: Decimal
    balance_applied: Decimal  # from the credit balance, after the change's own credit
    credit_carried: Decimal  # the change's credit beyond its charge, kept as credit
    credit_applied: Decimal  # all credit used: the change's own, then the balance
    total_due: Decimal
    licenses: tuple[ChangedLicense, ...]
    lines: tuple[QuoteLine, ...]

    @property
    def choice(self) -> tuple:
        """What changes, for the quote's fingerprint."""
        return ("change", self.tier, self.period, tuple(lic.id for lic in self.licenses))

    @property
    def quantity(self) -> int:
        return len(self.licenses)

    @property
    def label(self) -> str:
        return f"{TIER_LABELS[self.tier]} {self.period}"

    @property
    def renews_on(self) -> date:
        return min(lic.renews_to for lic in self.licenses)


def unused_credit(*, list_price: Decimal, rate: Decimal, paid: Decimal, period_start: date, period_end: date,
                  today: date) -> Decimal:
    """The credit for a license's unused share of its period (an upgrade, or support's cancel now):
    min(list price × (1 − its rate), what was paid for it this period) × days left ÷ days in the
    period, rounded once. Nothing outside the period."""
    if not period_start <= today < period_end:
        return ZERO
    days, left = (period_end - period_start).days, (period_end - today).days
    ceiling = min(to_money(list_price * (1 - rate)), max(paid, ZERO))
    return to_money(ceiling * left / days)


def _what(licenses) -> str:
    """ "#3, #4 (Pro monthly)" — the licenses a line is about."""
    kinds: dict[tuple[str, str], list[int]] = {}
    for lic in licenses:
        kinds.setdefault((lic.tier, lic.period), []).append(lic.id)
    return "; ".join(f"{', '.join(f'#{n}' for n in ids)} ({TIER_LABELS[tier]} {period})"
                     for (tier, period), ids in kinds.items())


def quote_change(
    *,
    today: date,
    prices: dict[tuple[str, str], Decimal],
    licenses: list[ChangingLicense] | tuple[ChangingLicense, ...],
    tier: str,
    period: str,
    active_count: int,
    credit_balance: Decimal = ZERO,
) -> ChangeQuote:
    """Price moving these licenses to `tier` and `period` today (an immediate change: see module doc).

    `prices` are the entries in force today; `active_count` the account's active licenses (the
    bracket the new tier is charged at; a change does not move it). Raises PricingError for a
    change that is not immediate, a license not inside its period, or no price.
    """
    if not licenses:
        raise PricingError("a change moves at least one license")
    if len({lic.id for lic in licenses}) != len(licenses):
        raise PricingError("a license is changed once per change")
    try:
        new_list = to_money(prices[(tier, period)])
    except KeyError:
        raise PricingError(f"no price for {tier} {period} on {today}") from None
    rate = volume_rate(active_count)
    credit_balance = max(to_money(credit_balance), ZERO)
    changed = []
    for lic in licenses:
        if change_direction(lic.tier, lic.period, tier, period) != UP:
            raise PricingError(f"license #{lic.id} cannot move from {lic.tier} {lic.period} to {tier} {period} now")
        if not lic.period_start <= today < lic.period_end:
            raise PricingError(f"license #{lic.id} is not inside its period on {today}")
        days, left = (lic.period_end - lic.period_start).days, (lic.period_end - today).days
        credit = unused_credit(list_price=lic.list_price, rate=lic.rate, paid=lic.paid, period_start=lic.period_start,
                               period_end=lic.period_end, today=today)
        if period == lic.period:  # the same share of the new tier; the billing date stays
            charge, renews_to = to_money(new_list * (1 - rate) * left / days), lic.period_end
        else:  # monthly -> annual: a full year from today, out of the monthly group
            charge, renews_to = to_money(new_list * (1 - rate)), add_years(today, 1)
        changed.append(ChangedLicense(lic.id, tier, period, new_list, rate, credit, charge, today, renews_to))

    credit_unused = sum((lic.credit for lic in changed), ZERO)
    charge_new = sum((lic.charge for lic in changed), ZERO)
    plural = "s" if len(changed) > 1 else ""
    lines = []
    if credit_unused:
        lines.append(QuoteLine("credit_unused", f"Credit for cancelled license{plural}: unused time of "
                                                f"{_what(licenses)}", 1, -credit_unused, -credit_unused))
    ends = {lic.renews_to for lic in changed}
    # One period for all, or each to its own billing date (a mixed selection): the line says which.
    until = day_words(ends.pop()) if len(ends) == 1 else "each license's billing date"
    # n × the unit when every license pays the same (one line either way: the summary reads one figure).
    same = len({lic.charge for lic in changed}) == 1
    lines.append(QuoteLine("charge_new", f"{TIER_LABELS[tier]} license{plural}, {PERIOD_LABELS[period].lower()}: "
                                         f"{day_words(today)} – {until}", len(changed) if same else 1,
                           changed[0].charge if same else charge_new, charge_new))
    own_used = min(credit_unused, charge_new)
    carried = credit_unused - own_used
    if carried:
        lines.append(QuoteLine("credit_carried", "Unused credit added to your credit balance", 1, carried, carried))
    balance_applied = min(credit_balance, charge_new - own_used)
    if balance_applied:
        lines.append(QuoteLine("credit_applied", "Credit balance applied", 1, -balance_applied, -balance_applied))
    total_due = charge_new - own_used - balance_applied
    return ChangeQuote(
        today=today, tier=tier, period=period, count=active_count, rate=rate, credit_unused=credit_unused,
        charge_new=charge_new, credit_balance=credit_balance, balance_applied=balance_applied,
        credit_carried=carried, credit_applied=own_used + balance_applied, total_due=total_due,
        licenses=tuple(changed), lines=tuple(lines),
    )

