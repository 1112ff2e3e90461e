"""Regression tests for the defects a review found, each written so it fails on the code as it was.

1. Billing details saved while the first monthly purchase sets the anchor must not erase the anchor
   (the form wrote the whole account row back from a copy read before the purchase).
2. Make default racing Remove must never leave an account without a default card, and removing a
   card twice (a double click, two tabs) is a clear refusal, never a 500.
3. Malformed invoice numbers in the PDF URL (a NUL reached PostgreSQL: 500) answer 404.
4. The admin cannot delete or edit a paid license, nor delete a price already in force.
5. One usage debit buys at most one auto top-up.
6. The sandbox refuses the "declined" and "insufficient funds" test cards when they are saved, and
   the 0341 card saves but every charge of it is declined with nothing recorded but the failure.

The races (marked `postgres`) need PostgreSQL's row locks and skip on SQLite; run them with
DATABASE_URL=postgres://... as tests/concurrency explains. Everything else runs on both databases.
"""

import datetime
import secrets
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client, TestCase
from django.utils import timezone

from accounts.models import Account
from accounts.services import billing_details_update
from billing.cards import card_remove
from billing.purchase import license_purchase
from billing.usage import usage_record
from invoices.models import Invoice
from licenses.models import License, PriceListEntry, Purchase
from payments.models import Card, PaymentAttempt
from payments.services import CardGone, PaymentDeclined, card_make_default
from tests.conftest import DECLINED, DECLINES_CHARGES, INSUFFICIENT, MASTERCARD, VISA, add_card, logged_in
from tests.factories import UserFactory
from tests.helpers import buy, buy_directly, charges, clock_set, post, processor_money, text
from tokens.models import TokenSettings, TopUp
from tokens.services import token_balance, tokens_grant_signup

ON_POSTGRES = connection.vendor == "postgresql"
if ON_POSTGRES:  # its module skips itself elsewhere, and would take this one with it
    from tests.concurrency.test_races import race

D = Decimal
# March 10th: the first monthly purchase anchors renewals on the 10th; a purchase on March 20th is
# then charged 21 of the 31 days until April 10th (docs/rules.md, pro-rata).
NOW = datetime.datetime(2026, 3, 10, 12, 0, tzinfo=datetime.UTC)
TEN_DAYS_LATER = NOW + datetime.timedelta(days=10)
DETAILS_URL = "/billing/payment/details/"
ADD_CARD_URL = "/billing/payment/cards/add/"
DETAILS = {"name": "Alice Events GmbH", "address_line1": "2 Harbour Road", "address_line2": "Unit 5",
           "city": "Hamburg", "postal_code": "20457", "country": "Germany", "vat_id": "DE123456789"}


def racing(test):
    """A race between real threads, each on its own connection: committed data, PostgreSQL only."""
    for mark in (pytest.mark.postgres, pytest.mark.django_db(transaction=True),
                 pytest.mark.skipif(not ON_POSTGRES, reason="races need PostgreSQL row locks "
                                                            "(set DATABASE_URL=postgres://...)")):
        test = mark(test)
    return test


def clients_of(user, count: int) -> list[Client]:
    """`count` browsers (tabs) logged in as `user`, one per racing thread."""
    clients = [Client() for _ in range(count)]
    for client in clients:
        client.force_login(user)
    return clients


def remove_url(card) -> str:
    return f"/billing/payment/cards/{card.pk}/remove/"


def default_url(card) -> str:
    return f"/billing/payment/cards/{card.pk}/default/"


def card_form(number, **extra) -> dict:
    return {"number": number, "exp_month": 12, "exp_year": 2099, "cvc": "123", **extra}


def anchor_day(account) -> int | None:
    return Account.objects.values_list("monthly_anchor_day", flat=True).get(pk=account.pk)


def assert_a_later_monthly_purchase_is_pro_rated(account) -> None:
    """What the customer would notice if the anchor were lost: the next monthly license would be
    charged a full $99.00 month instead of the 21 days left until the 10th."""
    purchase = buy_directly(account, now=TEN_DAYS_LATER, period="monthly")
    prorata = purchase.invoice.lines.filter(kind="prorata")
    assert prorata.count() == 1, list(purchase.invoice.lines.values_list("kind", "description"))
    assert "21 of 31 days until Apr 10" in prorata.get().description
    assert purchase.invoice.subtotal < D("99.00")


def assert_one_default_among_saved_cards(account) -> None:
    """Exactly one saved card is the default whenever any is saved, and a removed card never is."""
    saved = Card.objects.filter(account=account)
    assert saved.filter(is_default=True).count() == (1 if saved.exists() else 0), list(
        Card.all_objects.filter(account=account).values_list("pk", "is_default", "removed_at"))
    assert not Card.all_objects.filter(account=account, is_default=True, removed_at__isnull=False).exists()


# 1. Billing details and the monthly anchor ------------------------------------------------------------


@pytest.fixture
def monthly_buyer(alice, alice_card, prices):
    """Alice with a card, her clock on March 10th, no monthly license yet (so no anchor)."""
    clock_set(alice.account, NOW)
    assert anchor_day(alice.account) is None
    return alice


def test_billing_details_saved_from_a_copy_read_before_the_first_monthly_purchase_keep_its_anchor(monthly_buyer):
    # The copy a billing-details request would hold, read before the purchase committed.
    stale = Account.objects.get(pk=monthly_buyer.account.pk)
    buy_directly(monthly_buyer.account, monthly_buyer, period="monthly")
    assert anchor_day(monthly_buyer.account) == 10

    billing_details_update(account=stale, **DETAILS)

    saved = Account.objects.get(pk=monthly_buyer.account.pk)
    assert saved.monthly_anchor_day == 10
    assert (saved.name, saved.city, saved.vat_id) == ("Alice Events GmbH", "Hamburg", "DE123456789")
    assert_a_later_monthly_purchase_is_pro_rated(monthly_buyer.account)


def test_billing_details_posted_on_the_payment_tab_after_the_first_monthly_purchase_keep_its_anchor(
        monthly_buyer):
    client = logged_in(monthly_buyer)
    buy_directly(monthly_buyer.account, monthly_buyer, period="monthly")

    response = post(client, DETAILS_URL, DETAILS, follow=True)

    assert response.status_code == 200
    assert "Billing details saved. New invoices will use them." in text(response)
    assert anchor_day(monthly_buyer.account) == 10
    assert Account.objects.get(pk=monthly_buyer.account.pk).name == "Alice Events GmbH"
    assert_a_later_monthly_purchase_is_pro_rated(monthly_buyer.account)


def test_billing_details_cannot_write_anything_but_billing_details(monthly_buyer):
    # The guard that keeps a caller from sneaking other columns through the same door.
    with pytest.raises(ValueError, match="monthly_anchor_day"):
        billing_details_update(account=monthly_buyer.account, monthly_anchor_day=1)


@racing
@pytest.mark.parametrize("round_", range(6))  # each round catches an erased anchor about half the time
def test_eight_tabs_saving_billing_details_while_the_first_monthly_purchase_runs_leave_the_anchor_set(
        monthly_buyer, round_):
    # A single post's read-then-write rarely straddles the moment the purchase records itself and
    # writes the anchor; so each tab saves its details again and again (at least once) until it sees
    # the purchase recorded. It stops then: a save that read the account afterwards would write the
    # anchor back and hide an earlier save that erased it.
    account = monthly_buyer.account
    clients = clients_of(monthly_buyer, 8)

    def purchase():
        return license_purchase(account=account, user=monthly_buyer, token=secrets.token_hex(16), tier="pro",
                                period="monthly", quantity=1)

    def details(client):
        def save_until_the_purchase_is_recorded():
            statuses = [client.post(DETAILS_URL, DETAILS).status_code]
            while not Purchase.objects.filter(account=account).exists():
                statuses.append(client.post(DETAILS_URL, DETAILS).status_code)
            return statuses
        return save_until_the_purchase_is_recorded

    results = race(purchase, *(details(client) for client in clients))

    (bought, created), statuses = results[0], [status for result in results[1:] for status in result]
    assert created and bought.licenses.count() == 1
    assert set(statuses) == {302}, statuses
    saved = Account.objects.get(pk=monthly_buyer.account.pk)
    assert (saved.monthly_anchor_day, saved.name, saved.vat_id) == (10, "Alice Events GmbH", "DE123456789")
    assert_a_later_monthly_purchase_is_pro_rated(monthly_buyer.account)


# 2. Make default and Remove ---------------------------------------------------------------------------


@pytest.fixture
def two_cards(alice):
    """Alice's default Visa (A) and a Mastercard (B), no licenses: either card may go."""
    first, second = add_card(alice.account, VISA), add_card(alice.account, MASTERCARD)
    assert (first.is_default, second.is_default) == (True, False)
    return first, second


def test_removing_a_card_twice_says_it_was_already_removed(alice, two_cards):
    visa, mastercard = two_cards
    client = logged_in(alice)

    first = post(client, remove_url(visa), follow=True)
    assert first.status_code == 200
    assert "Visa ending 4242 removed. Mastercard ending 4444 is now your default card." in text(first)

    again = post(client, remove_url(visa))
    assert again.status_code == 409
    assert "Visa ending 4242 was already removed." in text(again)
    assert list(Card.objects.filter(account=alice.account).values_list("pk", "is_default")) == [(mastercard.pk, True)]
    assert_one_default_among_saved_cards(alice.account)


def test_a_removed_card_cannot_be_made_the_default(alice, two_cards):
    visa, mastercard = two_cards
    client = logged_in(alice)
    assert post(client, remove_url(mastercard)).status_code == 302

    response = post(client, default_url(mastercard))

    assert response.status_code in (404, 409)
    assert Card.objects.get(account=alice.account, is_default=True).pk == visa.pk
    assert_one_default_among_saved_cards(alice.account)


def test_the_service_refuses_to_make_a_removed_card_the_default(alice, two_cards):
    # The view finds only saved cards; the service must hold on its own (a tab opened before the removal).
    visa, mastercard = two_cards
    card_remove(account=alice.account, card=mastercard)
    with pytest.raises(CardGone):
        card_make_default(account=alice.account, card=mastercard)
    assert Card.objects.get(account=alice.account, is_default=True).pk == visa.pk
    assert_one_default_among_saved_cards(alice.account)


def card_pair():
    """A fresh account with a default card A and a second card B, no licenses."""
    account = UserFactory().account
    clock_set(account, NOW)
    return account, add_card(account, VISA), add_card(account, MASTERCARD)


@racing
@pytest.mark.parametrize("round_", range(10))
def test_make_default_racing_remove_of_the_other_card_leaves_one_default(db, round_):
    account, visa, mastercard = card_pair()

    made, removed = race(lambda: card_make_default(account=account, card=mastercard),
                         lambda: card_remove(account=account, card=visa), outcomes=(CardGone,))

    # Whichever went first, the Mastercard ends the default: made so, or promoted as the only card left.
    assert not isinstance(made, CardGone) and not isinstance(removed, CardGone)
    assert list(Card.objects.filter(account=account).values_list("pk", "is_default")) == [(mastercard.pk, True)]
    assert_one_default_among_saved_cards(account)


@racing
@pytest.mark.parametrize("round_", range(10))
def test_make_default_racing_remove_of_the_same_card_leaves_one_default(db, round_):
    account, visa, mastercard = card_pair()

    made, removed = race(lambda: card_make_default(account=account, card=mastercard),
                         lambda: card_remove(account=account, card=mastercard), outcomes=(CardGone,))

    # Remove first: making a removed card default is refused (CardGone) and the Visa stays default.
    # Make default first: the Mastercard goes as the default, and the Visa takes over again.
    assert not isinstance(removed, CardGone)
    assert isinstance(made, CardGone) or made.pk == mastercard.pk
    assert list(Card.objects.filter(account=account).values_list("pk", "is_default")) == [(visa.pk, True)]
    assert Card.all_objects.get(pk=mastercard.pk).removed_at is not None
    assert_one_default_among_saved_cards(account)


@racing
def test_six_tabs_removing_the_same_card_remove_it_once_and_never_fail(alice, two_cards):
    visa, mastercard = two_cards
    clients = clients_of(alice, 6)

    responses = race(*(lambda client=client: client.post(remove_url(visa)) for client in clients))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [302] + [409] * 5, statuses
    assert Card.all_objects.get(pk=visa.pk).removed_at is not None
    assert list(Card.objects.filter(account=alice.account).values_list("pk", "is_default")) == [(mastercard.pk, True)]
    assert_one_default_among_saved_cards(alice.account)


# 3. Malformed invoice numbers -------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["%00", "PB-2026-1", "../x", "PB-2026-000001%00", "PB-" + "9" * 5000,
                                    "PB-2026-" + "1" * 300, "%27%20OR%201=1--", "PB-2026-999999"])
def test_a_malformed_invoice_number_in_the_pdf_address_is_not_found_never_a_server_error(alice, alice_card, prices,
                                                                                         number):
    invoice = buy_directly(alice.account, alice).invoice  # the owner has an invoice of her own
    client = logged_in(alice)

    response = client.get(f"/billing/invoices/{number}.pdf")

    assert response.status_code == 404
    assert client.get(f"/billing/invoices/{invoice.number}.pdf").status_code == 200


# 4. The admin and the books ---------------------------------------------------------------------------


@pytest.fixture
def paid_license(alice, alice_card, prices):
    purchase = buy_directly(alice.account, alice)
    assert purchase.invoice.status == Invoice.PAID
    return purchase.licenses.get()


def license_row(license_) -> dict:
    return License.objects.filter(pk=license_.pk).values().get()


def test_the_admin_cannot_delete_a_paid_license(admin_client, paid_license):
    before = license_row(paid_license)
    url = f"/admin/licenses/license/{paid_license.pk}/delete/"

    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    # Nor from the changelist, all at once.
    admin_client.post("/admin/licenses/license/", {"action": "delete_selected", "_selected_action": [paid_license.pk],
                                                   "post": "yes"})
    assert license_row(paid_license) == before


def test_the_admin_cannot_change_a_paid_licenses_status_or_cancellation(admin_client, paid_license):
    before = license_row(paid_license)
    assert (before["status"], before["cancel_at_period_end"]) == (License.ACTIVE, False)

    response = admin_client.post(f"/admin/licenses/license/{paid_license.pk}/change/", {
        "account": paid_license.account_id, "purchase": paid_license.purchase_id, "tier": paid_license.tier,
        "period": paid_license.period, "status": License.EXPIRED, "cancel_at_period_end": "on",
        "purchased_on": paid_license.purchased_on, "period_start": paid_license.period_start,
        "period_end": paid_license.period_end, "list_price": paid_license.list_price,
        "discount_rate": paid_license.discount_rate})

    assert response.status_code == 403
    assert license_row(paid_license) == before


def test_the_admin_cannot_delete_a_price_already_in_force(admin_client, prices):
    entry = PriceListEntry.objects.get(tier="pro", period="monthly")
    url = f"/admin/licenses/pricelistentry/{entry.pk}/delete/"

    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    changelist = admin_client.get("/admin/licenses/pricelistentry/")
    assert changelist.status_code == 200
    assert "delete_selected" not in text(changelist)
    assert 'name="action"' not in text(changelist)
    admin_client.post("/admin/licenses/pricelistentry/", {"action": "delete_selected",
                                                          "_selected_action": [entry.pk], "post": "yes"})
    assert PriceListEntry.objects.filter(pk=entry.pk, unit_price=D("99.00")).exists()


def test_the_admin_can_delete_a_price_still_to_come(admin_client, prices):
    future = PriceListEntry.objects.create(tier="pro", period="monthly", unit_price=D("109.00"),
                                           effective_from=timezone.localdate() + datetime.timedelta(days=365))
    url = f"/admin/licenses/pricelistentry/{future.pk}/delete/"

    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not PriceListEntry.objects.filter(pk=future.pk).exists()
    assert PriceListEntry.objects.filter(tier="pro", period="monthly", unit_price=D("99.00")).exists()


# 5. Auto top-up -----------------------------------------------------------------------------------------


def test_one_usage_debit_beyond_the_balance_buys_exactly_one_auto_top_up(alice, alice_card, packages):
    account = alice.account
    clock_set(account, NOW)
    starter = packages[0]
    assert (starter.name, starter.tokens, starter.price) == ("Starter", 100, D("10.00"))
    tokens_grant_signup(account=account)  # 50 tokens
    TokenSettings.objects.create(account=account, auto_top_up=True, auto_top_up_threshold=500,
                                 auto_top_up_package=starter)

    # 60 > 50: the debit buys Starter first (150), then goes through (90). 90 is still below 500, but
    # that retry must not queue a second top-up: one debit buys at most one.
    with TestCase.captureOnCommitCallbacks(execute=True):
        recorded = usage_record(account=account, output_type="ai_image", quantity=60, event_id="booth-1",
                                idempotency_key=secrets.token_hex(16))

    assert recorded.body["debited"] == 60
    assert TopUp.objects.filter(account=account, automatic=True).count() == 1
    assert TopUp.objects.filter(account=account).count() == 1
    assert list(charges(account=account).values_list("amount", flat=True)) == [D("10.00")]
    assert token_balance(account) == 90
    assert processor_money() == 1000


# 6. The sandbox's test cards -----------------------------------------------------------------------------


@pytest.mark.parametrize(("number", "message"), [(DECLINED, "Your card was declined."),
                                                 (INSUFFICIENT, "Your card has insufficient funds.")])
def test_a_card_the_processor_refuses_is_not_saved_and_the_reason_is_shown(alice, number, message):
    response = post(logged_in(alice), ADD_CARD_URL, card_form(number))

    assert response.status_code == 400
    assert message in text(response)
    assert not Card.all_objects.exists()


@pytest.fixture
def card_that_declines(alice, prices):
    client = logged_in(alice)
    clock_set(alice.account, NOW)
    response = post(client, ADD_CARD_URL, card_form(DECLINES_CHARGES), follow=True)
    assert response.status_code == 200
    assert "Visa ending 0341 added. It is your default card." in text(response)
    return client


def assert_nothing_recorded_but_a_failed_attempt(account) -> None:
    assert not Invoice.objects.exists()
    assert not License.objects.exists()
    assert processor_money() == 0
    assert set(PaymentAttempt.objects.filter(account=account).values_list("status", flat=True)) == {
        PaymentAttempt.FAILED}


def test_the_0341_card_saves_but_a_purchase_charged_to_it_is_declined(alice, card_that_declines):
    with pytest.raises(PaymentDeclined, match="Your card was declined."):
        license_purchase(account=alice.account, user=alice, token=secrets.token_hex(16), tier="pro",
                         period="monthly", quantity=1)
    assert_nothing_recorded_but_a_failed_attempt(alice.account)


def test_the_0341_card_saves_but_buying_with_it_on_the_purchase_form_is_declined(alice, card_that_declines):
    response = buy(card_that_declines, htmx=True)

    assert response.status_code == 402
    assert "Your card was declined. Nothing was charged." in text(response)
    assert_nothing_recorded_but_a_failed_attempt(alice.account)
