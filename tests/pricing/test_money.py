"""Money: half-up rounding to the cent, no floats, exact cents, and how amounts are shown."""

from decimal import Decimal

import pytest

from pictor_billing.money import format_usd, from_minor_units, to_minor_units, to_money

MINUS = "\u2212"  # the Billing area shows negatives with a real minus sign


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(Decimal("1.005"), "1.01", id="1.005 rounds up to 1.01 (the float trap)"),
        pytest.param(Decimal("2.675"), "2.68", id="2.675 rounds up to 2.68 (the other float trap)"),
        pytest.param(Decimal("0.125"), "0.13", id="half a cent on an even cent still rounds up"),
        pytest.param(Decimal("1.004999"), "1.00", id="just under half a cent rounds down"),
        pytest.param(Decimal("-1.005"), "-1.01", id="negative half cents round away from zero"),
        pytest.param(Decimal("49"), "49.00", id="whole Decimal gains two decimals"),
        pytest.param(49, "49.00", id="int"),
        pytest.param("1490.5", "1490.50", id="numeric string"),
        pytest.param(" 2.675 ", "2.68", id="numeric string with spaces"),
        pytest.param(Decimal("0"), "0.00", id="zero"),
    ],
)
def test_to_money_rounds_half_up_to_the_cent(value, expected):
    result = to_money(value)
    assert result == Decimal(expected)
    assert str(result) == expected  # always exactly two decimals


@pytest.mark.parametrize("value", [1.005, 0.1, 49.0, float("nan")])
def test_to_money_refuses_floats(value):
    with pytest.raises(TypeError):
        to_money(value)


@pytest.mark.parametrize("value", ["abc", "", "1,000.00", "NaN", "Infinity", Decimal("-Infinity")])
def test_to_money_refuses_what_is_not_an_amount(value):
    with pytest.raises(ValueError):
        to_money(value)


@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        (Decimal("49.00"), 4900),
        (Decimal("1490.00"), 149000),
        (Decimal("0.01"), 1),
        (Decimal("0.00"), 0),
        (Decimal("12.3"), 1230),
        (Decimal("99"), 9900),
        (Decimal("-12.34"), -1234),
    ],
)
def test_to_minor_units_is_exact(amount, cents):
    result = to_minor_units(amount)
    assert result == cents
    assert type(result) is int


@pytest.mark.parametrize("amount", [Decimal("1.005"), Decimal("49.999"), Decimal("0.001")])
def test_to_minor_units_refuses_three_decimals_instead_of_rounding(amount):
    with pytest.raises(ValueError):
        to_minor_units(amount)


def test_minor_units_round_trip():
    for cents in (0, 1, 99, 4900, 149000, -1234):
        assert to_minor_units(from_minor_units(cents)) == cents
    assert str(from_minor_units(4900)) == "49.00"


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (Decimal("49"), "$49.00"),
        (Decimal("1490.00"), "$1,490.00"),
        (Decimal("1234567.891"), "$1,234,567.89"),
        (Decimal("0"), "$0.00"),
        (Decimal("0.005"), "$0.01"),
        (Decimal("-49.00"), f"{MINUS}$49.00"),
        (Decimal("-1234.5"), f"{MINUS}$1,234.50"),
        (Decimal("-0.004"), "$0.00"),  # rounds to zero: no minus sign on $0.00
    ],
)
def test_format_usd_shows_dollars_with_thousands_and_a_minus_sign(amount, shown):
    assert format_usd(amount) == shown
