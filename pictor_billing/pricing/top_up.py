"""Pricing tokens: one package or a mix (credit first), and the cheapest mix that covers a need."""

import heapq
import math
from dataclasses import dataclass
from decimal import Decimal

from pictor_billing.money import ZERO, to_money
from pictor_billing.pricing.base import PricingError, QuoteLine


@dataclass(frozen=True)
class TopUpQuote:
    """Every figure of a token package purchase."""

    package_name: str
    tokens: int
    list_subtotal: Decimal
    credit_balance: Decimal
    credit_applied: Decimal
    total_due: Decimal
    lines: tuple[QuoteLine, ...]

    @property
    def choice(self) -> tuple:
        """What the customer chose, for the quote's fingerprint."""
        return ("tokens", self.package_name, self.tokens)


@dataclass(frozen=True)
class PackageOffer:
    """A token package as the pricing service needs it."""

    id: int
    name: str
    tokens: int
    price: Decimal


def quote_top_up(*, package_name: str, tokens: int, price: Decimal, credit_balance: Decimal = ZERO) -> TopUpQuote:
    """Price one token package: its list price, less any credit balance (never below $0.00)."""
    return quote_top_up_mix(items=[(PackageOffer(0, package_name, tokens, price), 1)], credit_balance=credit_balance)


def quote_top_up_mix(
    *, items: list[tuple[PackageOffer, int]] | tuple[tuple[PackageOffer, int], ...], credit_balance: Decimal = ZERO
) -> TopUpQuote:
    """Price one purchase of several packages (count of each); the credit balance applies first."""
    credit_balance = max(to_money(credit_balance), ZERO)
    items = [(offer, count) for offer, count in items if count]
    if not items:
        raise PricingError("a top-up needs at least one package")
    lines = []
    for offer, count in items:
        price = to_money(offer.price)
        if price <= 0 or offer.tokens <= 0 or count < 0:
            raise PricingError("a token package needs a positive price and token count")
        lines.append(QuoteLine("item", f"{offer.name}: {offer.tokens:,} tokens", count, price, price * count))
    list_subtotal = sum((line.amount for line in lines), ZERO)
    credit_applied = min(credit_balance, list_subtotal)
    if credit_applied:
        lines.append(QuoteLine("credit_applied", "Credit balance applied", 1, -credit_applied, -credit_applied))
    return TopUpQuote(
        package_name=", ".join(f"{count} × {offer.name}" if count > 1 else offer.name for offer, count in items),
        tokens=sum(offer.tokens * count for offer, count in items), list_subtotal=list_subtotal,
        credit_balance=credit_balance, credit_applied=credit_applied,
        total_due=list_subtotal - credit_applied, lines=tuple(lines),
    )


# Above this many (units × packages) steps the exact table gives way to the residue search.
_MIX_TABLE_LIMIT = 400_000


def cheapest_package_mix(packages: list[PackageOffer], tokens_needed: int) -> tuple[tuple[PackageOffer, int], ...]:
    """The cheapest packages (with counts) that together give at least `tokens_needed` tokens.

    Small needs are solved exactly by a table over token amounts (in units of
    the packages' common divisor). Large needs use the best-value package for
    the bulk: any mix's other packages are searched by residue modulo the best
    package's size (a shortest-path search over at most that many states), and
    the bulk tops each candidate up; that is exact whenever the other packages
    stay within the need, which they do for needs this large.
    """
    packages = sorted((p for p in packages if p.tokens > 0 and p.price > 0), key=lambda p: (p.tokens, p.id))
    if tokens_needed <= 0 or not packages:
        return ()
    unit = math.gcd(*(p.tokens for p in packages))
    sizes = {p.id: p.tokens // unit for p in packages}
    needed = -(-tokens_needed // unit)
    by_id = {p.id: p for p in packages}
    if needed * len(packages) <= _MIX_TABLE_LIMIT:
        counts = _mix_by_table(packages, sizes, needed)
    else:
        counts = _mix_by_residues(packages, sizes, needed)
    return tuple((by_id[pid], count) for pid, count in sorted(counts.items(), key=lambda kv: by_id[kv[0]].tokens))


def _mix_by_table(packages, sizes, needed) -> dict[int, int]:
    cost: list[Decimal] = [ZERO] + [Decimal("Infinity")] * needed
    choice: list[PackageOffer | None] = [None] * (needed + 1)
    for amount in range(1, needed + 1):
        for p in packages:
            candidate = p.price + cost[max(0, amount - sizes[p.id])]
            if candidate < cost[amount]:
                cost[amount], choice[amount] = candidate, p
    counts: dict[int, int] = {}
    while needed > 0:
        p = choice[needed]
        counts[p.id] = counts.get(p.id, 0) + 1
        needed -= sizes[p.id]
    return counts


def _mix_by_residues(packages, sizes, needed) -> dict[int, int]:
    best = min(packages, key=lambda p: (p.price / p.tokens, -p.tokens))
    size = sizes[best.id]
    others = [p for p in packages if p.id != best.id]
    # Dijkstra over residues modulo the best size; a path's cost is the price of
    # the other packages beyond what the same tokens would cost in best value.
    excess = {p.id: p.price - best.price * sizes[p.id] / size for p in others}
    price_of = {p.id: p.price for p in others}
    # Each residue keeps its cheapest (excess, units, price) and a parent pointer, so
    # memory grows with the best package's size, not its square.
    found: dict[int, tuple[Decimal, int, Decimal, int | None, int | None]] = {}
    queue = [(ZERO, 0, ZERO, 0, None, None)]  # (excess, units, price, residue, parent residue, package id)
    while queue:
        spent, units, paid, residue, parent, package_id = heapq.heappop(queue)
        if residue in found:
            continue
        found[residue] = (spent, units, paid, parent, package_id)
        for p in others:
            after = (residue + sizes[p.id]) % size
            if after not in found:
                heapq.heappush(queue, (spent + excess[p.id], units + sizes[p.id], paid + price_of[p.id],
                                       after, residue, p.id))
    options = []
    for residue, (_, units, paid, _, _) in found.items():
        if units > needed:
            continue
        bulk = -(-(needed - units) // size)
        options.append((paid + best.price * bulk, units + bulk * size, residue, bulk))
    price, _, residue, bulk = min(options)
    path = []
    while found[residue][4] is not None:
        path.append(found[residue][4])
        residue = found[residue][3]
    counts: dict[int, int] = {best.id: bulk} if bulk else {}
    for pid in path:
        counts[pid] = counts.get(pid, 0) + 1
    return counts
