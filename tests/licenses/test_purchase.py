"""Buying licenses: what the books hold afterwards, and that the Order Summary tells the truth."""

import calendar
import datetime
import re
import time
import uuid
from decimal import Decimal

import pytest
from django.core import signing
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Account
from billing.purchase import license_purchase
from invoices.models import Invoice
from licenses.models import CouponRedemption, License, Purchase
from payments.models import CreditEntry
from payments.services import card_make_default, credit_balance
from pictor_billing.form_tokens import form_token_new
from pictor_billing.pricing import add_years
from tests.conftest import DECLINES_CHARGES, add_card, logged_in
from tests.factories import CouponFactory
from tests.helpers import (
    ADD_URL,
    books,
    buy,
    buy_directly,
    charge_of,
    charges,
    form_token,
    order_data,
    post,
    purchase_data,
    shown_digest,
    summary,
    summary_figure,
    summary_shows,
    text,
)

D = Decimal


def at(year, month, day, hour=12) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, tzinfo=datetime.UTC)


def this_year() -> int:
    return timezone.now().year


@pytest.fixture
def welcome10(db):
    return CouponFactory(code="WELCOME10", kind="percent", value=D("10"), combines_with_volume=True)


@pytest.fixture
def flat50(db):
    return CouponFactory(code="FLAT50", kind="fixed", value=D("50"), combines_with_volume=False)


@pytest.fixture
def client(alice):
    return logged_in(alice)


# A completed purchase -------------------------------------------------------------------------------


def test_buying_three_licenses_creates_three_licenses_one_paid_invoice_and_one_charge(prices, alice, alice_card,
                                                                                      client):
    response = buy(client, tier="pro", period="monthly", quantity=3)
    assert response.status_code == 302
    assert response["Location"] == "/billing/licenses/"

    licenses = License.objects.filter(account=alice.account)
    assert licenses.count() == 3
    assert {(lic.tier, lic.period, lic.status, lic.list_price) for lic in licenses} == {
        ("pro", "monthly", License.ACTIVE, D("99.00"))}
    purchase = Purchase.objects.get()
    assert purchase.user == alice
    assert purchase.total_due == D("297.00")
    invoice = Invoice.objects.get()
    assert invoice == purchase.invoice
    assert (invoice.account, invoice.kind, invoice.status) == (alice.account, Invoice.PURCHASE, Invoice.PAID)
    assert invoice.total == D("297.00")
    assert sum(line.amount for line in invoice.lines.all()) == invoice.total
    charge = charges().get()
    assert (charge.amount, charge.card, charge.account) == (D("297.00"), alice_card, alice.account)
    assert charge_of(invoice) == charge
    assert not CouponRedemption.objects.exists()


def test_the_licenses_tab_shows_the_new_licenses_and_a_confirmation(prices, alice_card, client):
    page = buy(client, quantity=2, follow=True)
    body = text(page)
    invoice = Invoice.objects.get()
    assert (f"Purchase complete: 2 Pro licenses, monthly. $198.00 charged to Visa ending 4242. Invoice "
            f"{invoice.number} is on the Invoices tab.") in body
    for lic in License.objects.all():
        assert f'id="license-{lic.pk}"' in body


def test_an_htmx_purchase_sends_the_browser_to_the_licenses_tab(prices, alice_card, client):
    response = buy(client, htmx=True)
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/billing/licenses/"
    assert License.objects.count() == 1


SCENARIOS = [
    pytest.param({"tier": "pro", "period": "monthly", "quantity": 1}, 0, "", id="one pro monthly"),
    pytest.param({"tier": "premium", "period": "annual", "quantity": 2}, 0, "WELCOME10", id="premium annual, coupon"),
    pytest.param({"tier": "basic", "period": "monthly", "quantity": 6}, 0, "", id="volume bracket on its own"),
    pytest.param({"tier": "pro", "period": "annual", "quantity": 2}, 3, "welcome10", id="bracket reached, adjustment"),
    pytest.param({"tier": "basic", "period": "monthly", "quantity": 4}, 6, "FLAT50",
                 id="a $50 coupon beats 15% of a small order"),
    pytest.param({"tier": "premium", "period": "annual", "quantity": 1}, 0, "FLAT50", id="fixed coupon alone"),
    pytest.param({"tier": "pro", "period": "monthly", "quantity": 1}, 0, "NOSUCHCODE", id="unknown coupon"),
]


@pytest.mark.parametrize(("choices", "already_active", "coupon"), SCENARIOS)
def test_the_order_summary_shows_the_total_that_is_then_charged(prices, alice, alice_card, client, welcome10, flat50,
                                                               choices, already_active, coupon):
    if already_active:
        buy_directly(alice.account, alice, tier="basic", period="annual", quantity=already_active)
    shown = summary_figure(summary(client, coupon=coupon, **choices))

    before = charges().count()
    response = buy(client, coupon=coupon, **choices)
    assert response.status_code == 302

    purchase = Purchase.objects.latest("pk")
    assert purchase.total_due == shown
    assert purchase.invoice.total == shown
    assert sum(line.amount for line in purchase.invoice.lines.all()) == shown
    if shown:
        assert charges().count() == before + 1
        assert charge_of(purchase.invoice).amount == shown


def test_the_order_summary_runs_the_same_queries_for_two_or_forty_active_licenses(
        prices, alice, alice_card, client, django_assert_num_queries):
    buy_directly(alice.account, alice, tier="basic", period="annual", quantity=2)
    with CaptureQueriesContext(connection) as few:
        summary(client, tier="pro", period="monthly", quantity=1, coupon="")
    buy_directly(alice.account, alice, tier="basic", period="annual", quantity=38)
    with django_assert_num_queries(len(few.captured_queries)):
        summary(client, tier="pro", period="monthly", quantity=1, coupon="")


def test_a_coupon_that_applies_is_redeemed_once_with_the_purchase(prices, alice, alice_card, client, welcome10):
    assert buy(client, tier="pro", period="annual", quantity=1, coupon=" welcome10 ").status_code == 302
    purchase = Purchase.objects.get()
    assert purchase.coupon == welcome10
    assert purchase.total_due == D("891.00")
    redemption = CouponRedemption.objects.get()
    assert (redemption.coupon, redemption.account, redemption.purchase) == (welcome10, alice.account, purchase)
    assert [line.kind for line in purchase.invoice.lines.all()] == ["item", "coupon"]


def test_a_coupon_that_does_not_apply_is_not_redeemed_and_the_full_price_is_charged(prices, alice_card, client):
    CouponFactory(code="OLD20", kind="percent", value=D("20"), expires_at=timezone.now() - datetime.timedelta(days=1))
    assert buy(client, tier="pro", period="monthly", quantity=1, coupon="OLD20").status_code == 302
    purchase = Purchase.objects.get()
    assert purchase.coupon is None
    assert purchase.total_due == D("99.00")
    assert not CouponRedemption.objects.exists()


def test_a_non_combinable_coupon_beaten_by_the_volume_discount_is_not_redeemed(prices, alice_card, client, flat50):
    assert buy(client, tier="premium", period="monthly", quantity=5, coupon="FLAT50").status_code == 302
    purchase = Purchase.objects.get()
    assert purchase.total_due == D("670.50")  # 745.00 less the 10% volume discount, not less $50
    assert purchase.coupon is None
    assert not CouponRedemption.objects.exists()


# Billing dates --------------------------------------------------------------------------------------


def test_the_first_monthly_purchase_sets_the_accounts_anchor_day(prices, alice, alice_card, client):
    today = timezone.now().date()
    buy(client, period="monthly")
    alice.account.refresh_from_db()
    assert alice.account.monthly_anchor_day == today.day
    lic = License.objects.get()
    next_month = (today.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
    last_day = calendar.monthrange(next_month.year, next_month.month)[1]
    assert (lic.period_start, lic.period_end) == (today, next_month.replace(day=min(today.day, last_day)))


def test_an_annual_purchase_leaves_the_anchor_day_alone_and_renews_a_year_later(prices, alice, alice_card, client):
    today = timezone.now().date()
    buy(client, period="annual", quantity=2)
    alice.account.refresh_from_db()
    assert alice.account.monthly_anchor_day is None
    assert {lic.period_end for lic in License.objects.all()} == {add_years(today, 1)}


def test_a_second_monthly_purchase_mid_cycle_is_pro_rated_and_renews_on_the_anchor(prices, alice, alice_card):
    first = buy_directly(alice.account, alice, period="monthly", now=at(2026, 1, 10))
    alice.account.refresh_from_db()
    assert alice.account.monthly_anchor_day == 10
    assert first.licenses.get().period_end == datetime.date(2026, 2, 10)

    second = buy_directly(alice.account, alice, tier="pro", period="monthly", now=at(2026, 1, 20))
    # 21 of the 31 days from Jan 10 to Feb 10 are left: 99.00 x 21 / 31 = 67.0645... -> 67.06
    assert second.total_due == D("67.06")
    assert second.licenses.get().period_end == datetime.date(2026, 2, 10)
    lines = [(line.kind, line.description, line.amount) for line in second.invoice.lines.all()]
    assert lines == [("item", "Pro license, monthly", D("99.00")),
                     ("prorata", "Pro-rata: 21 of 31 days until Feb 10", D("-31.94"))]
    alice.account.refresh_from_db()
    assert alice.account.monthly_anchor_day == 10


def test_a_mid_cycle_purchase_in_the_modal_is_pro_rated_as_the_summary_said(prices, alice, alice_card, client):
    ten_days_ago = timezone.now() - datetime.timedelta(days=10)
    anchor_license = buy_directly(alice.account, alice, period="monthly", now=ten_days_ago).licenses.get()

    page = summary(client, tier="pro", period="monthly", quantity=1, coupon="")
    shown = summary_figure(page)
    assert D("0") < shown < D("99.00")
    assert summary_figure(page, "prorata_adjustment") == shown - D("99.00")
    assert f'datetime="{anchor_license.period_end:%Y-%m-%d}"' in text(page)

    buy(client, tier="pro", period="monthly", quantity=1)
    purchase = Purchase.objects.latest("pk")
    assert purchase.total_due == shown
    assert purchase.licenses.get().period_end == anchor_license.period_end
    assert [line.kind for line in purchase.invoice.lines.all()] == ["item", "prorata"]


# Volume brackets ------------------------------------------------------------------------------------


def test_reaching_five_licenses_credits_the_three_already_active_and_moves_them_to_ten_percent(
        prices, alice, alice_card, client):
    buy(client, tier="pro", period="monthly", quantity=3)
    old = set(License.objects.values_list("pk", flat=True))
    assert set(License.objects.values_list("discount_rate", flat=True)) == {D("0.00")}

    page = summary(client, tier="pro", period="monthly", quantity=2, coupon="")
    assert summary_figure(page, "volume_adjustment") == D("-29.70")
    assert summary_figure(page) == D("148.50")
    buy(client, tier="pro", period="monthly", quantity=2)

    purchase = Purchase.objects.latest("pk")
    # 2 x 99.00 = 198.00, less 10% = 178.20, less 3 x 9.90 credited to the licenses already active
    assert purchase.total_due == D("148.50")
    assert set(License.objects.values_list("discount_rate", flat=True)) == {D("0.10")}
    assert License.objects.exclude(pk__in=old).count() == 2
    lines = {line.kind: line for line in purchase.invoice.lines.all()}
    assert lines["volume_discount"].amount == D("-19.80")
    assert (lines["volume_adjustment"].quantity, lines["volume_adjustment"].amount) == (1, D("-29.70"))
    assert lines["volume_adjustment"].description == ("Volume discount adjustment: 3 active licenses move to 10% "
                                                      "for the rest of their period")
    ledger = sorted((e.kind, e.amount, e.invoice_id) for e in CreditEntry.objects.filter(account=alice.account))
    assert ledger == sorted([(CreditEntry.VOLUME_ADJUSTMENT, D("29.70"), purchase.invoice_id),
                             (CreditEntry.APPLIED, D("-29.70"), purchase.invoice_id)])
    assert credit_balance(alice.account) == 0


def test_a_volume_adjustment_larger_than_the_purchase_stays_in_the_credit_balance(prices, alice, alice_card):
    buy_directly(alice.account, alice, tier="premium", period="annual", quantity=9, now=at(2026, 3, 1))
    # The 10th license: 15% for all; the nine move from 10% to 15% of 1,490.00 for the full year.
    tenth = buy_directly(alice.account, alice, tier="basic", period="monthly", quantity=1, now=at(2026, 3, 1))
    adjustment = D("9") * D("74.50")
    assert tenth.total_due == D("0.00")
    left = D("49.00") - D("7.35")
    assert credit_balance(alice.account) == adjustment - left
    assert tenth.invoice.credit_applied == left
    assert sum(line.amount for line in tenth.invoice.lines.all()) == D("0.00")
    assert not charges().filter(invoice=tenth.invoice).exists()


def test_a_cancelling_license_still_counts_toward_the_bracket_when_buying(prices, alice, alice_card, client):
    from licenses.services import license_cancel

    licenses = list(buy_directly(alice.account, alice, quantity=4, period="annual").licenses.all())
    license_cancel(account=alice.account, license=licenses[0])
    page = summary(client, tier="pro", period="annual", quantity=1, coupon="")
    assert summary_figure(page, "volume_discount") == D("-99.00")
    assert "Volume bracket reached: 10% off with 5 active licenses." in text(page)


# One-time form tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True], ids=["plain form", "htmx"])
def test_posting_the_same_form_twice_completes_one_purchase(prices, alice_card, client, htmx):
    data = order_data(client, quantity=2)
    first = post(client, ADD_URL, data, htmx=htmx)
    second = post(client, ADD_URL, data, htmx=htmx)
    assert first.status_code == second.status_code
    assert (Purchase.objects.count(), charges().count(), Invoice.objects.count(), License.objects.count()) == (
        1, 1, 1, 2)
    page = text(client.get("/billing/licenses/"))
    number = Invoice.objects.get().number
    assert f"This purchase was already completed (invoice {number}). Nothing more was charged." in page


def test_the_same_token_again_through_the_service_returns_the_first_purchase(prices, alice, alice_card):
    token = uuid.uuid4().hex
    first, created = license_purchase(account=alice.account, user=alice, token=token, tier="pro", period="monthly",
                                      quantity=1)
    again, created_again = license_purchase(account=alice.account, user=alice, token=token, tier="premium",
                                            period="annual", quantity=7)
    assert (created, created_again) == (True, False)
    assert again == first
    assert (License.objects.count(), charges().count(), Invoice.objects.count()) == (1, 1, 1)


class DayOldSigner(signing.TimestampSigner):
    """Signs as if it were 25 hours ago: a form left open in a tab since yesterday."""

    def timestamp(self):
        return signing.b62_encode(int(time.time()) - 25 * 60 * 60)


def day_old_token(account_id) -> str:
    return DayOldSigner(salt="licenses.purchase").sign_object([account_id, "n" * 32], compress=False)


def forged_tokens(account_id):
    real = form_token_new(account_id=account_id, salt="licenses.purchase")
    nonce = signing.loads(real, salt="licenses.purchase")[1]
    return {
        "garbage": "not-a-token",
        "one changed character": real[:-1] + ("A" if real[-1] != "A" else "B"),
        "signed with the top-up salt": form_token_new(account_id=account_id, salt="tokens.top_up"),
        "signed with another key": signing.dumps([account_id, nonce], key="attacker", salt="licenses.purchase"),
        "another account's": form_token_new(account_id=account_id + 1000, salt="licenses.purchase"),
        "too long": real + "x" * 300,
        "a day old": day_old_token(account_id),
    }


@pytest.mark.parametrize("kind", ["garbage", "one changed character", "signed with the top-up salt",
                                  "signed with another key", "another account's", "too long", "a day old", "missing"])
def test_a_tampered_or_forged_form_token_is_refused_and_nothing_is_created(prices, alice, alice_card, client, kind):
    token = "" if kind == "missing" else forged_tokens(alice.account.pk)[kind]
    before = books()
    response = post(client, ADD_URL, purchase_data(token=token))
    assert response.status_code == 400
    assert "This form has expired. Review the order and try again." in text(response)
    assert books() == before


def test_after_an_expired_form_trying_again_completes_the_purchase(prices, alice, alice_card, client):
    refused = post(client, ADD_URL, purchase_data(token=day_old_token(alice.account.pk)))
    assert refused.status_code == 400
    offered = re.search(r'name="token" value="([^"]*)"', text(refused)).group(1)
    assert post(client, ADD_URL, purchase_data(token=offered, quote=shown_digest(refused))).status_code == 302
    assert Purchase.objects.count() == 1


# Declines and a missing card ------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True], ids=["plain form", "htmx"])
def test_a_declined_card_creates_nothing_and_keeps_the_filled_in_form(prices, alice, client, welcome10, htmx):
    add_card(alice.account, DECLINES_CHARGES)  # saves, then every charge is declined
    reason = "Your card was declined."
    before = books()
    data = order_data(client, tier="premium", period="annual", quantity=4, coupon="welcome10")
    token = data["token"]
    response = post(client, ADD_URL, data, htmx=htmx)
    assert response.status_code == 402
    body = text(response)
    assert f"{reason} Nothing was charged." in body
    assert re.search(r'name="quantity"[^>]*value="4"', body)
    assert re.search(r'name="coupon"[^>]*value="welcome10"', body)
    assert re.search(r'name="tier" value="premium" checked', body)
    assert re.search(r'name="period" value="annual"[^>]*checked', body)
    assert f'value="{token}"' in body  # the same order can be retried once the card is fixed
    assert books() == before
    assert Account.objects.get(pk=alice.account.pk).monthly_anchor_day is None


def test_a_decline_does_not_use_up_an_invoice_number(prices, alice, client):
    add_card(alice.account, DECLINES_CHARGES)
    assert buy(client).status_code == 402
    assert buy(client, period="monthly").status_code == 402
    card_make_default(account=alice.account, card=add_card(alice.account))
    assert buy(client).status_code == 302
    assert Invoice.objects.get().number == f"PB-{this_year()}-000001"
    assert License.objects.count() == 1


def test_without_a_default_card_nothing_is_charged_and_the_form_offers_to_add_one(prices, alice, client):
    before = books()
    response = buy(client, quantity=2)
    assert response.status_code == 402
    body = text(response)
    assert "Add a card before buying licenses. Nothing was charged." in body
    assert 'href="/billing/payment/cards/add/?next=/billing/licenses/add/"' in body
    assert books() == before


def test_the_purchase_modal_says_when_there_is_no_default_card(prices, alice, client):
    body = text(client.get(ADD_URL, headers={"HX-Request": "true"}))
    assert "You have no default card, so nothing can be charged." in body
    assert re.search(r'<button[^>]*type="submit" disabled data-pay-button>Pay</button>', body)


# Coupon outcomes in words ---------------------------------------------------------------------------


@pytest.fixture
def coupons(db, welcome10):
    now = timezone.now()
    CouponFactory(code="FLAT50", kind="fixed", value=D("50"), combines_with_volume=False,
                  starts_at=now - datetime.timedelta(days=60), expires_at=now - datetime.timedelta(days=30))
    CouponFactory(code="BIG100", kind="fixed", value=D("100"), combines_with_volume=False)
    CouponFactory(code="SMALL5", kind="fixed", value=D("5"), combines_with_volume=False)
    CouponFactory(code="SOON", kind="percent", value=D("20"),
                  starts_at=datetime.datetime(2099, 3, 5, tzinfo=datetime.UTC))
    CouponFactory(code="ONCE", kind="percent", value=D("20"), max_redemptions=0)
    CouponFactory(code="PREMIUMONLY", kind="percent", value=D("20"), tiers=["premium"])
    CouponFactory(code="ANNUALONLY", kind="percent", value=D("20"), periods=["annual"])


COUPON_WORDS = [
    pytest.param("WELCOME10", 1, "WELCOME10: 10% off", True, id="a valid percentage"),
    pytest.param("  welcome10 ", 1, "WELCOME10: 10% off", True, id="any case, spaces ignored"),
    pytest.param("FLAT50", 1, "FLAT50 has expired", False, id="expired"),
    pytest.param("NOPE", 1, "NOPE is not a valid coupon code", False, id="unknown"),
    pytest.param("SMALL5", 5, "SMALL5 not applied: the 10% volume discount is larger and they do not combine", False,
                 id="non-combinable, volume discount larger"),
    pytest.param("BIG100", 5, "BIG100: $100.00 off, instead of the 10% volume discount (they do not combine)", True,
                 id="non-combinable, coupon larger"),
    pytest.param("SOON", 1, "SOON is not valid until Mar 5, 2099", False, id="not yet valid"),
    pytest.param("ONCE", 1, "ONCE has been fully redeemed", False, id="used up"),
    pytest.param("PREMIUMONLY", 1, "PREMIUMONLY applies only to Premium licenses", False, id="other tier"),
    pytest.param("ANNUALONLY", 1, "ANNUALONLY applies only to annual billing", False, id="other period"),
]


@pytest.mark.parametrize(("code", "quantity", "words", "applied"), COUPON_WORDS)
def test_the_summary_says_what_the_coupon_did_in_plain_words(prices, alice, client, coupons, code, quantity, words,
                                                            applied):
    page = summary(client, tier="pro", period="monthly", quantity=quantity, coupon=code)
    assert page.status_code == 200
    body = text(page)
    assert words in body
    assert ("coupon-rejected" not in body) == applied
    list_subtotal = D("99.00") * quantity
    if not applied:  # the rest of the order still works
        expected = list_subtotal * (D("0.9") if quantity >= 5 else 1)
        assert summary_figure(page) == expected


def test_an_unknown_coupon_does_not_stop_the_purchase(prices, alice_card, client):
    assert buy(client, coupon="NOPE").status_code == 302
    assert Purchase.objects.get().total_due == D("99.00")
    assert not CouponRedemption.objects.exists()


def test_an_expired_license_no_longer_counts_toward_the_bracket(prices, alice, alice_card, client):
    licenses = list(buy_directly(alice.account, alice, quantity=4, period="annual").licenses.all())
    License.objects.filter(pk=licenses[0].pk).update(status=License.EXPIRED)
    page = summary(client, tier="pro", period="annual", quantity=1, coupon="")
    assert not summary_shows(page, "volume_discount")
    assert summary_figure(page) == D("990.00")


def test_a_100_percent_coupon_charges_nothing_but_still_issues_an_invoice(prices, alice, alice_card, client):
    CouponFactory(code="FREE", kind="percent", value=D("100"))
    assert buy(client, coupon="FREE").status_code == 302
    purchase = Purchase.objects.get()
    assert (purchase.total_due, purchase.invoice.total, charge_of(purchase.invoice)) == (D("0.00"), D("0.00"), None)
    assert not charges().exists()
    assert CouponRedemption.objects.count() == 1
    assert License.objects.count() == 1


def test_a_tier_without_a_price_in_force_is_refused_plainly(alice, alice_card, client):
    from tests.factories import price_list_seed

    price_list_seed(effective_from=timezone.now().date() + datetime.timedelta(days=30))  # announced, not in force
    client.raise_request_exception = False
    before = books()
    token = form_token_new(account_id=alice.account.pk, salt="licenses.purchase")
    responses = [client.get(ADD_URL), summary(client, tier="pro", period="monthly", quantity=1, coupon=""),
                 post(client, ADD_URL, purchase_data(token=token))]
    assert [r.status_code for r in responses] == [200, 400, 400]
    assert books() == before


def test_update_summary_or_pressing_enter_shows_the_order_again_and_buys_nothing(prices, alice, alice_card, client):
    before = books()
    token = form_token(client)
    response = post(client, ADD_URL, purchase_data(token=token, quantity=2, preview="1"))
    assert response.status_code == 200
    assert summary_figure(response, "total_due") == Decimal("198.00")  # 2 × $99.00
    assert books() == before
    # The same form can still complete the purchase afterwards.
    again = post(client, ADD_URL, purchase_data(token=token, quantity=2, quote=shown_digest(response)))
    assert again.status_code == 302
    assert Purchase.objects.get().total_due == Decimal("198.00")
