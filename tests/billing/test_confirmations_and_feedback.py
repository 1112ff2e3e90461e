"""Asked before a license ends or a card goes, and told beside the form that was used.

Cancel license and Remove card ask first, in a dialog (HTMX) or on a page of their own (no JavaScript):
opening the question changes nothing, and it says what will happen (when the license ends, which card
becomes the default). Messages about the cards and the billing details are shown next to them, and
an error after a save leaves no "saved" behind. The browser side (focus, dialogs) is in
tests/browser/test_keyboard_and_no_javascript.py.
"""

import re

import pytest

from licenses.models import License
from payments.models import Card
from tests.conftest import add_card, logged_in
from tests.helpers import HTMX, books, buy_directly, post, text

MASTERCARD = "5555555555554444"
DETAILS = {"name": "Alice Events GmbH", "address_line1": "Fotostrasse 1", "address_line2": "", "city": "Berlin",
           "postal_code": "10115", "country": "Germany", "vat_id": ""}


@pytest.fixture
def client(alice):
    return logged_in(alice)


@pytest.fixture
def annual(prices, alice, alice_card):
    return buy_directly(alice.account, alice, tier="pro", period="annual", quantity=1).licenses.get()


def region(body: str, start: str, end: str) -> str:
    """The part of the page from `start` to the next `end`."""
    tail = body[body.index(start):]
    return tail[:tail.index(end)]


# --- Cancel license ---------------------------------------------------------------------------------

def test_the_row_asks_before_cancelling_instead_of_cancelling_on_one_click(annual, client):
    row = region(text(client.get("/billing/licenses/")), f'id="license-{annual.pk}"', "</tr>")
    assert f'href="/billing/licenses/{annual.pk}/cancel/confirm/"' in row
    assert f'action="/billing/licenses/{annual.pk}/cancel/"' not in row


@pytest.mark.parametrize("htmx", [False, True], ids=["page without JavaScript", "dialog"])
def test_the_question_says_when_the_license_ends_and_changes_nothing(annual, client, htmx):
    before = books()
    response = client.get(f"/billing/licenses/{annual.pk}/cancel/confirm/", headers=HTMX if htmx else {})
    assert response.status_code == 200
    body = text(response)
    end = annual.period_end
    assert f"Cancel license #{annual.pk}?" in body
    assert f'<time datetime="{end:%Y-%m-%d}">{end:%b} {end.day}, {end.year}</time>, then ends' in body
    assert "you can undo this until then" in body
    assert f'action="/billing/licenses/{annual.pk}/cancel/"' in body
    assert body.lstrip().startswith("<dialog") == htmx
    assert books() == before
    annual.refresh_from_db()
    assert not annual.cancel_at_period_end


def test_confirming_without_javascript_cancels_and_says_until_when(annual, client):
    page = post(client, f"/billing/licenses/{annual.pk}/cancel/", follow=True)
    annual.refresh_from_db()
    assert annual.cancel_at_period_end
    assert f"License #{annual.pk} is cancelled. It stays active until" in text(page)


def test_asking_again_about_a_cancelled_license_offers_nothing_to_press(annual, alice, client):
    from licenses.services import license_cancel

    license_cancel(account=alice.account, license=annual)
    body = text(client.get(f"/billing/licenses/{annual.pk}/cancel/confirm/"))
    assert "is already cancelled" in body
    assert f'action="/billing/licenses/{annual.pk}/cancel/"' not in body


def test_another_accounts_license_is_a_404(annual, charlie):
    assert logged_in(charlie).get(f"/billing/licenses/{annual.pk}/cancel/confirm/").status_code == 404


def test_the_question_is_asked_with_a_get_only(annual, client):
    assert post(client, f"/billing/licenses/{annual.pk}/cancel/confirm/").status_code == 405
    assert not License.objects.get(pk=annual.pk).cancel_at_period_end


# --- Remove card ------------------------------------------------------------------------------------

def test_the_card_row_asks_before_removing(alice, client):
    card = add_card(alice.account)
    row = region(text(client.get("/billing/payment/")), f'id="card-{card.pk}"', "</li>")
    assert f'href="/billing/payment/cards/{card.pk}/remove/confirm/"' in row
    assert f'action="/billing/payment/cards/{card.pk}/remove/"' not in row


def test_removing_the_default_says_beforehand_which_card_becomes_the_default(alice, client):
    default = add_card(alice.account)
    add_card(alice.account, MASTERCARD)
    before = books()
    body = text(client.get(f"/billing/payment/cards/{default.pk}/remove/confirm/"))
    assert "Remove Visa ending 4242?" in body
    assert "Mastercard ending 4444 becomes your default card" in body
    assert books() == before
    assert Card.objects.filter(pk=default.pk).exists()

    page = post(client, f"/billing/payment/cards/{default.pk}/remove/", follow=True)
    assert "Visa ending 4242 removed. Mastercard ending 4444 is now your default card." in text(page)


def test_a_default_card_that_cannot_go_says_why_and_offers_no_remove_button(prices, alice, client):
    default = add_card(alice.account)
    add_card(alice.account, MASTERCARD)
    buy_directly(alice.account, alice)
    body = text(client.get(f"/billing/payment/cards/{default.pk}/remove/confirm/", headers=HTMX))
    assert "Make another card the default before removing this one" in body
    assert f'action="/billing/payment/cards/{default.pk}/remove/"' not in body


def test_another_accounts_card_is_a_404(alice, charlie):
    card = add_card(alice.account)
    assert logged_in(charlie).get(f"/billing/payment/cards/{card.pk}/remove/confirm/").status_code == 404


def test_the_card_message_is_shown_with_the_cards_not_at_the_top(alice, client):
    add_card(alice.account)
    spare = add_card(alice.account, MASTERCARD)
    response = post(client, f"/billing/payment/cards/{spare.pk}/default/", htmx=True)
    body = text(response)
    cards = region(body, '<div id="cards">', "<ul")
    assert "Mastercard ending 4444 is now your default card." in cards
    assert re.search(r'<p class="[^"]*placed-message[^"]*" role="status" tabindex="-1" autofocus>', cards)
    top = region(body, 'id="messages"', "</div>")
    assert "default card" not in top  # the page's own messages are emptied, not repeated


# --- Billing details --------------------------------------------------------------------------------

def test_saved_is_said_inside_the_form_and_takes_the_focus(alice, client):
    response = post(client, "/billing/payment/details/", DETAILS, htmx=True)
    assert response.status_code == 200
    form = region(text(response), '<form id="billing-details"', "</form>")
    assert re.search(r'role="status" tabindex="-1" autofocus>Billing details saved. New invoices will use them.<',
                     form)


def test_without_javascript_saving_returns_to_the_form_with_the_message_beside_it(alice, client):
    response = post(client, "/billing/payment/details/", DETAILS)
    assert response.status_code == 302
    assert response["Location"] == "/billing/payment/#billing-details"
    body = text(client.get(response["Location"]))
    form = region(body, '<form id="billing-details"', "</form>")
    assert "Billing details saved." in form
    assert "Billing details saved." not in region(body, 'id="messages"', "</div>")


def test_an_error_after_a_save_leaves_no_saved_and_names_the_field(alice, client):
    post(client, "/billing/payment/details/", DETAILS, htmx=True)
    response = post(client, "/billing/payment/details/", {**DETAILS, "name": ""}, htmx=True)
    assert response.status_code == 400
    form = region(text(response), '<form id="billing-details"', "</form>")
    assert "saved" not in form.lower().replace("not saved", "")
    assert re.search(r'role="alert" tabindex="-1" autofocus>Billing details were not saved', form)
    assert re.search(r'<input[^>]+name="name"[^>]+aria-invalid="true"[^>]+aria-describedby="id_name_error"', form)
    assert 'id="id_name_error"' in form


# --- Sign-up errors ---------------------------------------------------------------------------------

def test_sign_up_errors_are_an_alert_and_tied_to_their_fields(db, client):
    from django.test import Client

    response = Client().post("/signup/", {"company_name": "", "email": "not-an-email", "password": "x"})
    assert response.status_code in (200, 400)
    body = text(response)
    assert re.search(r'role="alert"[^>]*>Your account was not created', body)
    for name in ("company_name", "email", "password"):
        field = re.search(rf'<input[^>]+name="{name}"[^>]*>', body).group(0)
        assert 'aria-invalid="true"' in field
        assert f"id_{name}_error" in field
        assert f'<ul class="errorlist" id="id_{name}_error">' in body
