"""Estimate an event: tokens needed against the balance, the cheapest package mix, and buying it in one go."""

import re
from decimal import Decimal

import pytest

from invoices.models import Invoice
from payments.models import CreditEntry
from pictor_billing.form_tokens import form_token_new
from tests.conftest import DECLINES_CHARGES, add_card, logged_in
from tests.helpers import HTMX, TOP_UP_URL, books, charges, post, summary_figure, text, token_balance_shown
from tests.tokens.conftest import spend
from tokens.models import TokenEntry, TopUp
from tokens.services import event_estimate, token_balance, tokens_adjust, tokens_grant_signup

D = Decimal
URL = "/billing/tokens/estimate/"
RESULT_URL = "/billing/tokens/estimate/result/"


def figure(response, name) -> str:
    match = re.search(rf'data-estimate="{name}">([^<]+)<', text(response))
    assert match, f"the estimate shows no {name}"
    return match.group(1)


def inputs(guests=200, **per_guest) -> dict:
    return {"guests": guests, **{f"per_guest_{kind}": count for kind, count in per_guest.items()}}


def estimator_token(client) -> str:
    response = client.get(URL, headers=HTMX)
    assert response.status_code == 200
    return re.search(r'name="token" value="([^"]+)"', text(response)).group(1)


def shown(client, data) -> str:
    """The digest of the top-up the estimate shows for these inputs ("" when it offers none)."""
    match = re.search(r'name="quote" value="([^"]*)"', text(post(client, RESULT_URL, data, htmx=True)))
    return match.group(1) if match else ""


def buy(client, token=None, *, htmx=False, quote=None, **data):
    """Press the estimate's pay button for these inputs: with the digest of what it shows now,
    unless the test gives the one it saw earlier."""
    quote = shown(client, data) if quote is None else quote
    return post(client, URL, {**data, "token": token or estimator_token(client), "quote": quote}, htmx=htmx)


@pytest.fixture
def account(alice, packages):
    tokens_grant_signup(account=alice.account)  # 50 tokens
    return alice.account


class TestFigures:
    def test_tokens_needed_are_rate_times_guests_times_outputs_per_type(self, account, alice_client):
        # 200 guests: 2 AI images each (1 token) = 400, 1 AI video each (10 tokens) = 2,000, photos free.
        response = alice_client.get(RESULT_URL, inputs(ai_image=2, ai_video=1, photo=5), headers=HTMX)
        assert response.status_code == 200
        assert "HX-Request" in response["Vary"]
        assert (figure(response, "ai_image"), figure(response, "ai_video"), figure(response, "photo")) == (
            "400", "2,000", "0")  # as shown, with thousands separators
        assert figure(response, "tokens_needed") == "2,400"
        assert figure(response, "balance") == "50"
        assert figure(response, "shortfall") == "2,350"

    def test_the_shortfall_is_covered_by_the_cheapest_package_mix(self, account, alice_client, alice_card):
        # Short by 2,350: 2 Large + 4 Starter = 2,400 tokens for $200.00 beats 2 Large + 1 Standard
        # ($205.00), 5 Standard ($225.00) and Event Pro ($350.00).
        response = alice_client.get(RESULT_URL, inputs(ai_image=2, ai_video=1), headers=HTMX)
        body = text(response)
        assert "Starter: 100 tokens <small>(4 × $10.00)</small>" in body
        assert "Large: 1,000 tokens <small>(2 × $80.00)</small>" in body
        assert summary_figure(response) == D("200.00")
        assert figure(response, "top_up_tokens") == "2,400"
        assert "Pay $200.00 with Visa ending 4242" in body
        assert "your balance becomes 2,450" in body

    def test_a_large_shortfall_is_bought_mostly_as_event_pro(self, account):
        # 10,000 guests × 50 AI videos × 10 tokens = 5,000,000 tokens, short by 4,999,950: 1,000 Event Pro.
        estimate = event_estimate(account=account, guests=10_000, outputs_per_guest={"ai_video": 50})
        assert estimate.tokens_needed == 5_000_000
        assert [(package.name, count) for package, count in estimate.mix] == [("Event Pro", 1000)]
        assert estimate.quote.total_due == D("350000.00")

    def test_the_price_takes_the_credit_balance_off(self, account, alice_client):
        CreditEntry.objects.create(account=account, kind=CreditEntry.ADMIN_CREDIT, amount=D("15.00"))
        # Short by 150: Starter + Starter ($20) is cheaper than Standard ($45); $15 credit leaves $5.00.
        response = alice_client.get(RESULT_URL, inputs(guests=100, ai_image=2), headers=HTMX)
        assert "Starter: 100 tokens <small>(2 × $10.00)</small>" in text(response)
        assert "Credit balance applied" in text(response)
        assert summary_figure(response) == D("5.00")

    def test_a_balance_that_covers_the_event_needs_no_top_up(self, account, alice_client):
        response = alice_client.get(RESULT_URL, inputs(guests=50, ai_image=1), headers=HTMX)
        assert figure(response, "tokens_needed") == "50"
        assert figure(response, "spare") == "0"
        assert "Your balance covers this event." in text(response)
        assert "Top up" not in text(response).split("Tokens needed", 1)[1]

    def test_without_a_card_it_says_to_add_one_instead_of_offering_the_button(self, account, alice_client):
        body = text(alice_client.get(RESULT_URL, inputs(ai_image=2), headers=HTMX))
        assert "You have no default card, so nothing can be charged." in body
        assert "Pay $" not in body

    def test_a_teammate_sees_the_same_estimate_and_charlie_his_own_balance(self, account, bob, charlie):
        assert figure(logged_in(bob).get(RESULT_URL, inputs(ai_image=1), headers=HTMX), "balance") == "50"
        assert figure(logged_in(charlie).get(RESULT_URL, inputs(ai_image=1), headers=HTMX), "balance") == "0"

    @pytest.mark.parametrize(("params", "message"), [
        ({"guests": 0}, "Guests must be from 1 to 10,000."),
        ({"guests": 10_001}, "Guests must be from 1 to 10,000."),
        ({"guests": "lots"}, "Guests must be a whole number."),
        ({"guests": ""}, "Enter the number of guests you expect."),
        ({"guests": 10, "per_guest_ai_image": 51}, "AI image per guest must be from 0 to 50."),
        ({"guests": 10, "per_guest_ai_video": -1}, "AI video per guest must be from 0 to 50."),
        ({"guests": 10, "per_guest_gif": "1e9"}, "GIF / boomerang per guest must be a whole number."),
        ({"guests": "9" * 50}, "Guests must be from 1 to 10,000."),
    ])
    def test_bad_input_is_a_400_that_says_why(self, account, alice_client, params, message):
        for url in (RESULT_URL, URL):
            response = alice_client.get(url, params, headers=HTMX)
            assert response.status_code == 400
            assert message in text(response)
            assert "data-estimate=" not in text(response)

    def test_the_result_is_one_fixed_set_of_queries(self, account, alice_client, django_assert_max_num_queries):
        with django_assert_max_num_queries(10):
            alice_client.get(RESULT_URL, inputs(guests=10_000, ai_video=50), headers=HTMX)


class TestWhereItOpens:
    def test_the_activity_page_and_the_top_up_modal_link_to_it(self, account, alice_client):
        assert f'hx-get="{URL}" hx-target="#modal-root">Estimate an event</a>' in text(alice_client.get(
            "/billing/tokens/"))
        top_up = text(alice_client.get(TOP_UP_URL + "?next=/billing/invoices/", headers=HTMX))
        assert f'hx-get="{URL}?next=/billing/invoices/" hx-target="#modal-root">Estimate an event</a>' in top_up

    def test_as_htmx_it_is_a_dialog_that_updates_live(self, account, alice_client):
        body = text(alice_client.get(URL, headers=HTMX))
        assert body.lstrip().startswith('<dialog class="modal modal-wide" aria-labelledby="estimate-title">')
        assert f'hx-post="{RESULT_URL}"' in body
        assert 'hx-trigger="input from:closest form delay:250ms"' in body
        assert '<div class="summary-live" aria-live="polite">' in body

    def test_without_javascript_it_is_a_page_whose_button_updates_the_estimate(self, account, alice_client):
        page = alice_client.get(URL)
        assert "<h1>Billing</h1>" in text(page) and '<section class="page-panel"' in text(page)
        assert figure(page, "tokens_needed") == "100"  # the defaults: 100 guests, 1 AI image each
        updated = post(alice_client, URL, {**inputs(guests=30, ai_video=2), "preview": "1",
                                           "token": estimator_token(alice_client)})
        assert updated.status_code == 200
        assert figure(updated, "tokens_needed") == "600"
        assert TopUp.objects.count() == 0

    def test_a_shared_link_with_inputs_opens_with_them(self, account, alice_client):
        assert figure(alice_client.get(URL, inputs(guests=7, ai_video=1)), "tokens_needed") == "70"


class TestTopUpTheMix:
    def test_it_buys_the_whole_mix_in_one_purchase_with_one_invoice(self, account, alice_client, alice_card):
        before_charges = charges().count()
        response = buy(alice_client, **inputs(ai_image=2, ai_video=1))
        assert response.status_code == 302 and response["Location"] == "/billing/tokens/"

        top_up = TopUp.objects.get()
        assert (top_up.tokens, top_up.package, top_up.automatic) == (2400, None, False)
        invoice = top_up.invoice
        assert Invoice.objects.filter(kind=Invoice.TOP_UP).count() == 1
        assert invoice.description == "Token top-up: 4 × Starter, 2 × Large, 2,400 tokens"
        assert [(line.description, line.quantity, line.amount) for line in invoice.lines.all()] == [
            ("Starter: 100 tokens", 4, D("40.00")), ("Large: 1,000 tokens", 2, D("160.00"))]
        assert invoice.total == D("200.00")
        assert charges().count() == before_charges + 1
        assert charges().get().amount == D("200.00")
        entry = TokenEntry.objects.get(kind=TokenEntry.TOP_UP)
        assert (entry.amount, entry.invoice) == (2400, invoice)
        assert token_balance(account) == 2450
        page = alice_client.get("/billing/tokens/")
        assert (f"2,400 tokens added. $200.00 charged to Visa ending 4242. Invoice {invoice.number} is on the "
                "Invoices tab.") in text(page)
        assert token_balance_shown(alice_client) == 2450

    def test_as_htmx_it_sends_the_page_to_where_the_top_up_modal_was_opened(self, account, alice_client, alice_card):
        response = buy(alice_client, htmx=True, next="/billing/invoices/", **inputs(guests=100, ai_image=1))
        assert response.status_code == 200
        assert response["HX-Redirect"] == "/billing/invoices/"
        assert TopUp.objects.get().tokens == 100  # short by 50: one Starter

    @pytest.mark.parametrize("htmx", [False, True], ids=["plain form", "htmx"])
    def test_the_same_form_posted_twice_buys_once(self, account, alice_client, alice_card, htmx):
        token = estimator_token(alice_client)
        first = buy(alice_client, token, htmx=htmx, **inputs(ai_image=2, ai_video=1))
        second = buy(alice_client, token, htmx=htmx, **inputs(ai_image=2, ai_video=1))
        assert first.status_code == second.status_code
        assert (TopUp.objects.count(), Invoice.objects.count(), charges().count()) == (1, 1, 1)
        assert token_balance(account) == 2450
        number = Invoice.objects.get().number
        assert f"This top-up was already completed (invoice {number}). Nothing more was charged." in text(
            alice_client.get("/billing/tokens/"))

    def test_the_mix_is_worked_out_again_from_the_balance_when_it_is_bought(self, account, alice_client, alice_card):
        token = estimator_token(alice_client)
        # Seen: short by 350 (Starter × 4, $40). Then an admin grants 300 before the button is pressed.
        assert figure(alice_client.get(RESULT_URL, inputs(ai_image=2), headers=HTMX), "shortfall") == "350"
        tokens_adjust(account=account, amount=300, reason="Goodwill", user=None)
        buy(alice_client, token, **inputs(ai_image=2))
        assert TopUp.objects.get().tokens == 100  # now short by 50 only
        assert charges().get().amount == D("10.00")

    def test_a_total_that_changed_since_the_button_was_drawn_is_shown_again_not_charged(
            self, account, alice_client, alice_card):
        token = estimator_token(alice_client)
        # The button was drawn when the top-up cost $10.00 (350 of 400 tokens on hand); booths have
        # spent 300 since and the same event now needs Starter × 4 ($40.00).
        tokens_adjust(account=account, amount=300, reason="Goodwill", user=None)
        seen = shown(alice_client, inputs(ai_image=2))
        spend(account, "ai_image", 300)
        response = buy(alice_client, token, quote=seen, **inputs(ai_image=2))
        assert response.status_code == 409
        assert "The estimate changed since you saw it: the top-up now costs $40.00. Nothing was charged." in (
            text(response))
        assert TopUp.objects.count() == 0 and charges().count() == 0

    def test_the_total_shown_on_the_button_is_what_is_charged(self, account, alice_client, alice_card):
        response = buy(alice_client, **inputs(ai_image=2))  # short by 350: Starter × 4, $40.00 on the button
        assert response.status_code == 302
        assert charges().get().amount == D("40.00")

    @pytest.mark.parametrize("extra", [{"package": "1"}, {"count": "9"}, {"total_due": "0.01"}, {"price": "1"},
                                       {"tokens": "100000"}])
    def test_posted_packages_counts_or_prices_are_refused(self, account, alice_client, alice_card, extra):
        before = books()
        response = buy(alice_client, **inputs(ai_image=2), **extra)
        assert response.status_code == 400
        assert "Prices and totals are always computed by Pictor." in text(response)
        assert books() == before

    def test_bad_input_buys_nothing(self, account, alice_client, alice_card):
        before = books()
        response = buy(alice_client, **inputs(guests=20_000, ai_image=2))
        assert response.status_code == 400
        assert "Please correct the highlighted fields. Nothing was charged." in text(response)
        assert "Guests must be from 1 to 10,000." in text(response)
        assert books() == before

    def test_a_forged_or_borrowed_token_is_refused(self, account, alice_client, alice_card, charlie):
        before = books()
        for token in ("forged", form_token_new(account_id=account.pk, salt="tokens.top_up"),
                      form_token_new(account_id=charlie.account.pk, salt="tokens.estimate")):
            response = buy(alice_client, token, **inputs(ai_image=2))
            assert response.status_code == 400
            assert "This form has expired. Review the estimate and try again." in text(response)
        assert books() == before

    def test_nothing_is_bought_when_the_balance_already_covers_it(self, account, alice_client, alice_card):
        before = books()
        response = buy(alice_client, **inputs(guests=10, ai_image=1))
        assert response.status_code == 409
        assert "Your balance already covers this event. Nothing was charged." in text(response)
        assert books() == before

    def test_without_a_card_nothing_is_charged(self, account, alice_client):
        before = books()
        response = buy(alice_client, **inputs(ai_image=2))
        assert response.status_code == 402
        assert "Add a card before topping up. Nothing was charged." in text(response)
        assert books() == before

    def test_a_declined_card_changes_nothing(self, account, alice_client):
        add_card(account, DECLINES_CHARGES)
        before = books()
        response = buy(alice_client, htmx=True, **inputs(ai_image=2))
        assert response.status_code == 402
        assert "Your card was declined. Nothing was charged." in text(response)
        assert 'name="guests" id="id_guests"' in text(response) and 'value="200"' in text(response)
        assert books() == before

    def test_usage_after_the_top_up_spends_the_new_tokens(self, account, alice_client, alice_card):
        buy(alice_client, **inputs(ai_image=2))
        spend(account, "ai_image", 400)
        assert token_balance(account) == 50 + 400 - 400
