"""Whatever the browser sends, the server decides: bad quantities, choices, prices and codes are refused plainly."""

import pytest

from tests.conftest import add_card, logged_in
from tests.helpers import ADD_URL, books, form_token, post, purchase_data, summary, summary_figure, text

QUANTITY = "Quantity must be a whole number from 1 to 100."

BAD_CHOICES = [
    pytest.param({"quantity": "0"}, QUANTITY, id="quantity 0"),
    pytest.param({"quantity": "-1"}, QUANTITY, id="quantity -1"),
    pytest.param({"quantity": "101"}, QUANTITY, id="quantity 101"),
    pytest.param({"quantity": "2.5"}, QUANTITY, id="quantity 2.5"),
    pytest.param({"quantity": "abc"}, QUANTITY, id="quantity abc"),
    pytest.param({"quantity": "1e3"}, QUANTITY, id="quantity 1e3"),
    pytest.param({"quantity": "9" * 40}, QUANTITY, id="quantity huge"),
    pytest.param({"quantity": ""}, "This field is required.", id="quantity missing"),
    pytest.param({"tier": "platinum"}, "Choose Basic, Pro or Premium.", id="unknown tier"),
    pytest.param({"tier": ""}, "This field is required.", id="no tier"),
    pytest.param({"period": "weekly"}, "Choose monthly or annual billing.", id="unknown period"),
    pytest.param({"coupon": "X" * 500}, "A coupon code has at most 40 characters.", id="500-character coupon"),
]


@pytest.fixture
def client(prices, alice):
    add_card(alice.account)
    return logged_in(alice)


@pytest.mark.parametrize("htmx", [False, True], ids=["plain form", "htmx"])
@pytest.mark.parametrize(("bad", "message"), BAD_CHOICES)
def test_a_purchase_with_a_bad_choice_is_refused_with_a_clear_message_and_nothing_is_charged(client, bad, message,
                                                                                             htmx):
    before = books()
    response = post(client, ADD_URL, purchase_data(token=form_token(client), **bad), htmx=htmx)
    assert response.status_code == 400
    body = text(response)
    assert message in body
    assert "Please correct the highlighted fields. Nothing was charged." in body
    assert books() == before


@pytest.mark.parametrize(("bad", "message"), BAD_CHOICES)
def test_the_summary_of_a_bad_choice_says_what_to_fix_and_shows_no_total(client, bad, message):
    response = summary(client, **purchase_data(**bad))
    assert response.status_code == 400
    body = text(response)
    assert message in body
    assert "Fix the highlighted choices to see your total." in body
    assert 'data-summary="total_due"' not in body


@pytest.mark.parametrize("extra", [{"price": "0.01"}, {"total_due": "0.00"}, {"unit_price": "1.00"},
                                   {"discount": "99"}, {"total_due": "0.00", "price": "0"}])
def test_a_posted_price_or_total_is_refused_and_nothing_is_charged(client, extra):
    before = books()
    response = post(client, ADD_URL, purchase_data(token=form_token(client), **extra))
    assert response.status_code == 400
    body = text(response)
    for name in extra:
        assert name in body
    assert "Prices and totals are always computed by Pictor." in body
    assert books() == before


def test_the_summary_ignores_a_price_in_the_query_and_shows_the_real_total(client):
    response = summary(client, **purchase_data(quantity=2), total_due="0.01", unit_price="0.01")
    assert response.status_code == 200
    assert summary_figure(response) == 198
    assert summary_figure(response, "list_subtotal") == 198


def test_an_unexpected_field_name_is_not_echoed_unescaped(client):
    response = post(client, ADD_URL, purchase_data(token=form_token(client), **{"<script>x</script>": "1"}))
    assert response.status_code == 400
    assert "<script>x</script>" not in text(response)


def test_a_purchase_with_no_fields_at_all_is_refused(client):
    before = books()
    response = post(client, ADD_URL, {})
    assert response.status_code == 400
    assert "Please correct the highlighted fields. Nothing was charged." in text(response)
    assert books() == before


def test_a_repeated_quantity_field_cannot_sneak_a_second_value_in(client):
    before = books()
    data = purchase_data(token=form_token(client))
    data["quantity"] = ["1", "500"]
    response = post(client, ADD_URL, data)
    # Django reads the last value: 500 is out of range.
    assert response.status_code == 400
    assert QUANTITY in text(response)
    assert books() == before


def test_get_on_a_post_only_action_is_refused(client, alice):
    assert client.get("/billing/licenses/1/cancel/").status_code == 405
    assert client.get("/billing/payment/details/").status_code == 405


@pytest.mark.parametrize("action", ["default", "remove"])
def test_a_foreign_card_id_is_not_found_and_nothing_changes(client, alice, charlie, action):
    charlie_card = add_card(charlie.account)
    before = books()
    response = post(client, f"/billing/payment/cards/{charlie_card.pk}/{action}/")
    assert response.status_code == 404
    assert books() == before
    charlie_card.refresh_from_db()
    assert charlie_card.is_default


@pytest.mark.parametrize("action", ["default", "remove"])
def test_a_card_id_that_does_not_exist_is_not_found(client, action):
    before = books()
    assert post(client, f"/billing/payment/cards/987654/{action}/").status_code == 404
    assert books() == before
