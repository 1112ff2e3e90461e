"""How the Billing area writes counts, dates and addresses: one format each, the same on every screen.

Pure functions and template filters: no database. Money has its own tests (tests/pricing/test_money.py).
"""

import datetime
from decimal import Decimal

import pytest
from django.template import engines

from pictor_billing.addresses import address_lines, country_code
from pictor_billing.pricing import day_words
from pictor_billing.templatetags.numbers import count, signed_count

MINUS = "\u2212"


def render(source: str, **context) -> str:
    return engines["django"].from_string(source).render(context)


# --- counts (tokens, invoices) --------------------------------------------------------------------

@pytest.mark.parametrize(("value", "shown"), [
    pytest.param(2100, "2,100", id="thousands get a separator"),
    pytest.param(1000000, "1,000,000", id="millions too"),
    pytest.param(999, "999", id="below a thousand: none"),
    pytest.param(0, "0", id="zero"),
    pytest.param(-2100, f"{MINUS}2,100", id="negative: a true minus sign"),
    pytest.param(Decimal("5000"), "5,000", id="a whole Decimal"),
    pytest.param("2100", "2,100", id="a numeric string"),
    pytest.param("n/a", "n/a", id="not a number: as it is"),
    pytest.param(None, "", id="None: nothing"),
])
def test_counts_have_thousands_separators(value, shown):
    assert count(value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    pytest.param(1000, "+1,000", id="tokens added"),
    pytest.param(-2100, f"{MINUS}2,100", id="tokens spent"),
    pytest.param(0, "0", id="free usage is 0, never −0"),
    pytest.param(-0, "0", id="minus zero is still 0"),
])
def test_a_ledger_change_is_signed_and_nothing_is_plain_zero(value, shown):
    assert signed_count(value) == shown


def test_the_filters_are_the_templates_own():
    assert render("{% load numbers %}{{ n|count }} tokens, {{ d|signed_count }}", n=2100, d=0) == "2,100 tokens, 0"


# --- dates ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("day", "words"), [
    (datetime.date(2027, 12, 1), "Dec 1, 2027"),
    (datetime.date(2028, 2, 29), "Feb 29, 2028"),
])
def test_dates_in_text_read_as_month_day_year(day, words):
    assert day_words(day) == words
    assert render('{{ d|date:"M j, Y" }}', d=day) == words  # what the templates write beside <time datetime>


# --- addresses --------------------------------------------------------------------------------------

SELLER = ["1 Market Street", "San Francisco, CA 94105", "United States"]  # settings.SELLER's default


@pytest.mark.parametrize(("fields", "lines"), [
    pytest.param(dict(line1="2 Mission St", city="San Francisco", postal_code="94105", country="US"),
                 ["2 Mission St", "San Francisco 94105", "United States"],
                 id="a US buyer reads like the US seller: city then ZIP, the country by name"),
    pytest.param(dict(line1="Fotostrasse 1", city="Berlin", postal_code="10115", country="Germany"),
                 ["Fotostrasse 1", "10115 Berlin", "Germany"], id="German: the postcode before the city"),
    pytest.param(dict(line1="Fotostrasse 1", city="Berlin", postal_code="10115", country="de"),
                 ["Fotostrasse 1", "10115 Berlin", "Germany"], id="a country code in any case is written out"),
    pytest.param(dict(line1="10 Downing St", line2="Westminster", city="London", postal_code="SW1A 2AA",
                      country="UK"), ["10 Downing St", "Westminster", "London SW1A 2AA", "United Kingdom"],
                 id="UK: the postcode after the town"),
    pytest.param(dict(city="Springfield", country="Narnia"), ["Springfield", "Narnia"],
                 id="an unknown country as typed, blank parts left out"),
    pytest.param(dict(), [], id="nothing at all"),
])
def test_a_buyers_address_is_printed_in_the_sellers_format(fields, lines):
    assert address_lines(**fields) == lines


def test_the_us_buyer_and_the_seller_put_the_same_things_on_the_same_lines():
    buyer = address_lines(line1="1 Market Street", city="San Francisco", postal_code="94105", country="usa")
    assert [line.split()[0] for line in buyer] == [line.split()[0] for line in SELLER]
    assert buyer[-1] == SELLER[-1]
    assert buyer[1].endswith("94105") and SELLER[1].endswith("94105")


@pytest.mark.parametrize(("typed", "code"), [("US", "US"), ("united states", "US"), ("U.S.A.", "US"),
                                             ("Deutschland", "DE"), ("Atlantis", None), ("", None)])
def test_countries_are_read_as_people_type_them(typed, code):
    assert country_code(typed) == code
