"""quote_top_up: a token package's price, less the credit balance, never below $0.00."""

from decimal import Decimal

import pytest

from pictor_billing.pricing import PricingError, quote_top_up

D = Decimal

TOP_UPS = [
    # package, tokens, price, credit balance -> credit applied, total due
    pytest.param("Starter", 100, "10.00", "0.00", "0.00", "10.00", id="no credit: the list price is due"),
    pytest.param("Standard", 500, "45.00", "12.34", "12.34", "32.66", id="partial credit"),
    pytest.param("Large", 1000, "80.00", "80.00", "80.00", "0.00", id="credit equal to the price"),
    pytest.param("Event Pro", 5000, "350.00", "500.00", "350.00", "0.00",
                 id="credit larger than the price: only the price is used"),
]


@pytest.mark.parametrize(("package", "tokens", "price", "balance", "applied", "total"), TOP_UPS)
def test_top_up_uses_the_credit_balance_first(package, tokens, price, balance, applied, total):
    q = quote_top_up(package_name=package, tokens=tokens, price=D(price), credit_balance=D(balance))
    assert (q.package_name, q.tokens) == (package, tokens)
    figures = (q.list_subtotal, q.credit_balance, q.credit_applied, q.total_due)
    assert figures == (D(price), D(balance), D(applied), D(total))
    assert sum(line.amount for line in q.lines) == q.total_due
    assert q.lines[0].kind == "item"
    assert q.lines[0].amount == D(price)
    credit_lines = [line for line in q.lines if line.kind == "credit_applied"]
    assert [line.amount for line in credit_lines] == ([-D(applied)] if D(applied) else [])


def test_top_up_line_names_the_package_and_its_tokens():
    q = quote_top_up(package_name="Event Pro", tokens=5000, price=D("350.00"))
    assert q.lines[0].description == "Event Pro: 5,000 tokens"
    assert q.total_due == D("350.00")


@pytest.mark.parametrize(("tokens", "price"), [(0, "10.00"), (100, "0.00"), (100, "-10.00"), (-5, "10.00")])
def test_top_up_needs_a_positive_price_and_token_count(tokens, price):
    with pytest.raises(PricingError):
        quote_top_up(package_name="Broken", tokens=tokens, price=D(price))


def test_top_up_refuses_a_float_price():
    with pytest.raises(TypeError):
        quote_top_up(package_name="Starter", tokens=100, price=10.0)
