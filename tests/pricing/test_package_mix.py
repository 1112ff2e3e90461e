"""The cheapest package mix: exact against brute force for small needs, and for large ones
the residue search agrees with the exact table."""

import itertools
import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pictor_billing.pricing.top_up import PackageOffer, _mix_by_residues, _mix_by_table, cheapest_package_mix

D = Decimal
SPEC_PACKAGES = [PackageOffer(1, "Starter", 100, D("10.00")), PackageOffer(2, "Standard", 500, D("45.00")),
                 PackageOffer(3, "Large", 1000, D("80.00")), PackageOffer(4, "Event Pro", 5000, D("350.00"))]


def price(mix) -> Decimal:
    return sum((offer.price * count for offer, count in mix), D("0"))


def tokens(mix) -> int:
    return sum(offer.tokens * count for offer, count in mix)


@pytest.mark.parametrize(("needed", "expected", "cost"), [
    (1, {"Starter": 1}, "10.00"),
    (101, {"Starter": 2}, "20.00"),
    (450, {"Standard": 1}, "45.00"),
    (950, {"Large": 1}, "80.00"),
    (1400, {"Starter": 4, "Large": 1}, "120.00"),  # cheaper than Standard + Large ($125)
    (5001, {"Starter": 1, "Event Pro": 1}, "360.00"),
    (10_000_000, {"Event Pro": 2000}, "700000.00"),
])
def test_spec_packages_are_mixed_at_the_lowest_price(needed, expected, cost):
    mix = cheapest_package_mix(SPEC_PACKAGES, needed)
    assert {offer.name: count for offer, count in mix} == expected
    assert price(mix) == D(cost)
    assert tokens(mix) >= needed


def test_nothing_is_bought_when_nothing_is_needed():
    assert cheapest_package_mix(SPEC_PACKAGES, 0) == ()
    assert cheapest_package_mix(SPEC_PACKAGES, -5) == ()
    assert cheapest_package_mix([], 100) == ()


offers = st.lists(
    st.builds(lambda n, t, p: PackageOffer(n, f"P{n}", t, D(p)),
              st.integers(1, 10_000), st.integers(1, 60), st.integers(1, 90)),
    min_size=1, max_size=3, unique_by=lambda o: o.id)


@settings(max_examples=150, deadline=None)
@given(offers, st.integers(1, 150))
def test_small_needs_match_a_brute_force_search(packages, needed):
    best = min(
        (combo for combo in itertools.product(*(range(needed // p.tokens + 2) for p in packages))
         if sum(p.tokens * c for p, c in zip(packages, combo, strict=True)) >= needed),
        key=lambda combo: sum(p.price * c for p, c in zip(packages, combo, strict=True)),
    )
    mix = cheapest_package_mix(packages, needed)
    assert tokens(mix) >= needed
    assert price(mix) == sum(p.price * c for p, c in zip(packages, best, strict=True))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(1, 90)), min_size=2, max_size=4), st.integers(1, 3))
def test_large_needs_by_residue_cost_what_the_exact_table_says(shapes, stretch):
    packages = sorted((PackageOffer(i, f"P{i}", t * 7, D(p)) for i, (t, p) in enumerate(shapes)),
                      key=lambda p: (p.tokens, p.id))
    unit = math.gcd(*(p.tokens for p in packages))
    sizes = {p.id: p.tokens // unit for p in packages}
    best = min(packages, key=lambda p: (p.price / p.tokens, -p.tokens))
    needed = sizes[best.id] * max(sizes.values()) * stretch + 3
    by_id = {p.id: p for p in packages}
    table = _mix_by_table(packages, sizes, needed)
    residues = _mix_by_residues(packages, sizes, needed)
    assert sum(by_id[i].price * c for i, c in residues.items()) == sum(by_id[i].price * c for i, c in table.items())
    assert sum(sizes[i] * c for i, c in residues.items()) >= needed
