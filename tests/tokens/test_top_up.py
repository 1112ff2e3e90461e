"""Top Up: a token package charged to the default card (credit first), tokens credited with its own invoice."""

import re
import uuid
from decimal import Decimal

import pytest

from billing.top_up import tokens_top_up
from invoices.models import Invoice
from payments.models import CreditEntry
from payments.services import credit_balance
from tests.conftest import DECLINES_CHARGES, add_card, logged_in
from tests.helpers import (
    TOP_UP_URL,
    books,
    buy_directly,
    charge_of,
    charges,
    form_token,
    post,
    shown_digest,
    text,
    token_balance_shown,
    top_up_data,
)
from tokens.models import TokenEntry, TopUp
from tokens.services import token_balance, tokens_grant_signup

D = Decimal


@pytest.fixture
def client(alice):
    return logged_in(alice)


@pytest.fixture
def standard(packages):
    return next(p for p in packages if p.name == "Standard")


def top_up(client, package, *, htmx=False, follow=False, **extra):
    """Open Top Up, choose the package, and pay for what its summary shows."""
    return post(client, TOP_UP_URL, top_up_data(client, package, **extra), htmx=htmx, follow=follow)


def test_a_top_up_charges_the_package_price_credits_the_tokens_and_issues_its_own_invoice(alice, alice_card, client,
                                                                                         standard):
    tokens_grant_signup(account=alice.account)
    page = top_up(client, standard, follow=True)
    assert page.status_code == 200

    top = TopUp.objects.get()
    assert (top.account, top.package, top.tokens) == (alice.account, standard, 500)
    invoice = top.invoice
    assert (invoice.kind, invoice.status, invoice.total) == (Invoice.TOP_UP, Invoice.PAID, D("45.00"))
    assert invoice.description == "Token top-up: Standard, 500 tokens"
    assert [(line.description, line.amount) for line in invoice.lines.all()] == [("Standard: 500 tokens", D("45.00"))]
    charge = charges().get()
    assert (charge.amount, charge.card, charge_of(invoice)) == (D("45.00"), alice_card, charge)
    entry = TokenEntry.objects.get(kind=TokenEntry.TOP_UP)
    assert (entry.amount, entry.invoice) == (500, invoice)
    assert token_balance(alice.account) == 550
    assert (f"500 tokens added. $45.00 charged to Visa ending 4242. Invoice {invoice.number} is on the "
            "Invoices tab.") in text(page)


def test_the_header_balance_changes_after_a_top_up(alice, alice_card, client, packages):
    tokens_grant_signup(account=alice.account)
    assert token_balance_shown(client) == 50
    top_up(client, packages[0])
    assert token_balance_shown(client) == 150
    assert token_balance_shown(client, "/billing/invoices/") == 150


def test_a_top_up_uses_the_credit_balance_first(alice, alice_card, client, standard):
    CreditEntry.objects.create(account=alice.account, kind=CreditEntry.ADMIN_CREDIT, amount=D("12.34"),
                               note="goodwill")
    top_up(client, standard)
    invoice = TopUp.objects.get().invoice
    assert (invoice.credit_applied, invoice.total) == (D("12.34"), D("32.66"))
    assert sum(line.amount for line in invoice.lines.all()) == D("32.66")
    assert charges().get().amount == D("32.66")
    assert credit_balance(alice.account) == 0
    applied = CreditEntry.objects.get(kind=CreditEntry.APPLIED)
    assert (applied.amount, applied.invoice) == (D("-12.34"), invoice)


def test_a_top_up_fully_paid_by_credit_charges_nothing(alice, alice_card, client, packages):
    CreditEntry.objects.create(account=alice.account, kind=CreditEntry.ADMIN_CREDIT, amount=D("25.00"))
    top_up(client, packages[0])
    invoice = TopUp.objects.get().invoice
    assert (invoice.total, charge_of(invoice)) == (D("0.00"), None)
    assert not charges().exists()
    assert credit_balance(alice.account) == D("15.00")
    assert token_balance(alice.account) == 100


def test_the_top_up_form_shows_the_price_after_credit(alice, alice_card, client, standard):
    CreditEntry.objects.create(account=alice.account, kind=CreditEntry.ADMIN_CREDIT, amount=D("5.00"))
    body = text(client.get(TOP_UP_URL))
    assert "$40.00 after $5.00 credit" in body


def test_a_top_up_always_has_an_invoice_of_its_own(prices, alice, alice_card, client, packages):
    buy_directly(alice.account, alice)
    top_up(client, packages[0])
    assert Invoice.objects.count() == 2
    assert TopUp.objects.get().invoice.kind == Invoice.TOP_UP


@pytest.mark.parametrize("htmx", [False, True], ids=["plain form", "htmx"])
def test_posting_the_same_top_up_form_twice_adds_the_tokens_once(alice, alice_card, client, standard, htmx):
    data = top_up_data(client, standard)
    post(client, TOP_UP_URL, data, htmx=htmx)
    second = post(client, TOP_UP_URL, data, htmx=htmx)
    assert second.status_code in (200, 302)
    assert (TopUp.objects.count(), charges().count(), Invoice.objects.count()) == (1, 1, 1)
    assert token_balance(alice.account) == 500
    number = Invoice.objects.get().number
    assert f"This top-up was already completed (invoice {number})." in text(client.get("/billing/licenses/"))


def test_the_same_token_through_the_service_returns_the_first_top_up(alice, alice_card, packages):
    token = uuid.uuid4().hex
    first, created = tokens_top_up(account=alice.account, package=packages[0], token=token)
    again, created_again = tokens_top_up(account=alice.account, package=packages[3], token=token)
    assert (created, created_again, again) == (True, False, first)
    assert token_balance(alice.account) == 100


def test_a_declined_top_up_changes_nothing(alice, client, standard):
    add_card(alice.account, DECLINES_CHARGES)
    reason = "Your card was declined."
    tokens_grant_signup(account=alice.account)
    before = books()
    response = top_up(client, standard, htmx=True)
    assert response.status_code == 402
    body = text(response)
    assert f"{reason} Nothing was charged." in body
    assert re.search(rf'name="package" value="{standard.pk}" checked', body)
    assert books() == before
    assert token_balance_shown(client) == 50


def test_a_top_up_without_a_card_says_to_add_one(alice, client, standard):
    before = books()
    response = top_up(client, standard)
    assert response.status_code == 402
    assert "Add a card before topping up. Nothing was charged." in text(response)
    assert books() == before


@pytest.mark.parametrize("package", ["987654", "abc", "", "9" * 30, "-1"])
def test_an_unknown_package_is_refused(alice, alice_card, client, packages, package):
    before = books()
    response = post(client, TOP_UP_URL, {"package": package, "token": form_token(client, TOP_UP_URL)})
    assert response.status_code == 400
    assert "Choose a package. Nothing was charged." in text(response)
    assert books() == before


def test_a_package_taken_off_sale_cannot_be_bought(alice, alice_card, client, packages):
    starter = packages[0]
    token = form_token(client, TOP_UP_URL)
    type(starter).objects.filter(pk=starter.pk).update(is_active=False)
    before = books()
    response = post(client, TOP_UP_URL, {"package": starter.pk, "token": token})
    assert response.status_code == 400
    assert books() == before


@pytest.mark.parametrize("extra", [{"price": "0.01"}, {"tokens": "5000"}, {"total_due": "0"}])
def test_a_posted_price_or_token_count_is_refused(alice, alice_card, client, packages, extra):
    before = books()
    response = top_up(client, packages[0], **extra)
    assert response.status_code == 400
    assert "Prices and totals are always computed by Pictor." in text(response)
    assert books() == before


def test_a_forged_top_up_token_is_refused(alice, alice_card, client, packages):
    from pictor_billing.form_tokens import form_token_new

    before = books()
    for token in ("forged", form_token_new(account_id=alice.account.pk, salt="licenses.purchase")):
        response = post(client, TOP_UP_URL, {"package": packages[0].pk, "token": token})
        assert response.status_code == 400
        assert "This form has expired. Choose the package again." in text(response)
    assert books() == before


def test_a_top_up_returns_to_the_tab_it_was_opened_from_but_never_off_site(alice, alice_card, client, packages):
    assert top_up(client, packages[0], next="/billing/invoices/")["Location"] == "/billing/invoices/"
    assert top_up(client, packages[0], next="https://evil.example/")["Location"] == "/billing/licenses/"


def test_after_an_expired_top_up_form_trying_again_works(alice, alice_card, client, packages):
    import time

    from django.core import signing

    class DayOldSigner(signing.TimestampSigner):
        def timestamp(self):
            return signing.b62_encode(int(time.time()) - 25 * 60 * 60)

    expired = DayOldSigner(salt="tokens.top_up").sign_object([alice.account.pk, "n" * 32], compress=False)
    refused = post(client, TOP_UP_URL, {"package": packages[0].pk, "token": expired})
    assert refused.status_code == 400
    offered = re.search(r'name="token" value="([^"]*)"', text(refused)).group(1)
    retry = {"package": packages[0].pk, "token": offered, "quote": shown_digest(refused)}
    assert post(client, TOP_UP_URL, retry).status_code == 302
    assert TopUp.objects.count() == 1


def test_a_package_without_a_price_is_not_offered_and_top_up_still_opens(alice, alice_card, client, packages):
    from tokens.models import TokenPackage

    TokenPackage.objects.filter(pk=packages[0].pk).update(price=0)
    response = client.get(TOP_UP_URL)
    assert response.status_code == 200
    assert packages[0].name not in text(response)
    assert packages[1].name in text(response)
