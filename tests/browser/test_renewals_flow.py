"""Renewals in a real browser: the past-due banner and its Pay now page (paid with a new card typed in,
by mouse and by keyboard), and the Licenses tab's next-renewal line.

Same set-up as test_billing_flow.py: an empty database with the admin's catalogue, Debian's Chromium
against the live server, and a person's way of finding things (roles, labels, names). The accounts are
on a test clock, set up server-side as tests/billing/test_pay_now.py's `past_due` fixture does, so the
dates on screen do not depend on the day the tests run.
"""

import datetime
import re

import pytest
from playwright.sync_api import Locator, Page, expect

from billing.clocks import clock_advance, clock_attach
from billing.models import Renewal
from invoices.models import Invoice
from licenses.models import License
from payments.models import Card
from payments.services import card_add, card_make_default
from tests.browser.test_billing_flow import DECLINES_CHARGES, VISA, loaded, log_in, open_tab
from tests.factories import AccountFactory, UserFactory
from tests.helpers import buy_directly

pytestmark = pytest.mark.browser

UTC = datetime.UTC
TABS = [("Licenses", "/billing/licenses/"), ("Payment", "/billing/payment/"), ("Invoices", "/billing/invoices/")]
BANNER_TEXT = "Your renewal of $198.00 on Apr 10, 2027 could not be charged, so its licenses are past due."
PAID = re.compile(r"Paid: \$198\.00 charged to Visa ending 4242 for invoice PB-TEST-\S+\. "
                  r"Your licenses are active again\.")


# --- set-up: what the billing run leaves behind ---------------------------------------------------

def owner_on_test_clock(start: datetime.datetime, email: str = "owner@booths.example"):
    user = UserFactory(email=email, account=AccountFactory(name="Booths Ltd"))
    clock_attach(account=user.account, start=start)
    user.account.refresh_from_db()
    return user


def add_card(account, number: str) -> Card:
    return card_add(account=account, number=number.replace(" ", ""), exp_month=12, exp_year=2099, cvc="123")


@pytest.fixture
def past_due(catalogue):
    """As test_pay_now.py's `past_due`: 2 Pro monthly bought Mar 10, 2027 with a Visa; the default card is
    then one that declines, so the Apr 10 renewal ($198.00: 2 × $99, below the first bracket) is past due."""
    owner = owner_on_test_clock(datetime.datetime(2027, 3, 10, 9, tzinfo=UTC))
    account = owner.account
    add_card(account, VISA)
    buy_directly(account, owner, quantity=2)
    card_make_default(account=account, card=add_card(account, DECLINES_CHARGES))
    clock_advance(account=account, to=datetime.datetime(2027, 4, 10, 12, tzinfo=UTC))
    renewal = Renewal.objects.get(account=account)
    assert renewal.status == Renewal.PAST_DUE
    return owner, renewal


# --- helpers: what a person sees and does ---------------------------------------------------------

def past_due_banner(page: Page) -> Locator:
    return page.get_by_role("alert").filter(has_text="could not be charged")


def new_card_form(page: Page) -> Locator:
    return page.get_by_role("form", name="Or pay with a new card")


def tab_to(page: Page, target: Locator, limit: int = 40) -> None:
    """Press Tab until `target` has the focus, as a person who cannot use a mouse would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            break
    else:
        pytest.fail(f"{target} cannot be reached with the Tab key")
    expect(target).to_be_focused()


def assert_focus_shown(target: Locator) -> None:
    """The focused element draws a focus ring (keyboard focus must be visible)."""
    outline = target.evaluate("el => el.matches(':focus-visible') && getComputedStyle(el).outlineStyle")
    assert outline and outline != "none", f"{target} shows no focus ring when focused by keyboard"


def assert_renewal_paid(owner, renewal) -> None:
    renewal.refresh_from_db()
    assert renewal.status == Renewal.PAID
    assert Invoice.objects.get(pk=renewal.invoice_id).status == Invoice.PAID
    assert set(License.objects.filter(account=owner.account).values_list("status", flat=True)) == {License.ACTIVE}
    assert Card.objects.get(account=owner.account, is_default=True).last4 == "4242"


# --- (a) the banner, Pay now with a new card, and the banner gone ---------------------------------

def test_past_due_banner_pay_now_with_a_new_card_and_the_banner_is_gone_on_every_tab(page: Page, past_due):
    owner, renewal = past_due
    log_in(page, owner.email)

    for name, path in TABS:
        open_tab(page, name, path)
        banner = past_due_banner(page)
        expect(banner, f"the {name} tab").to_be_visible()
        expect(banner).to_contain_text(BANNER_TEXT)
        expect(banner.get_by_role("link", name="Pay now", exact=True)).to_have_attribute(
            "href", f"/billing/renewals/{renewal.pk}/pay/")

    past_due_banner(page).get_by_role("link", name="Pay now", exact=True).click()
    loaded(page, f"/billing/renewals/{renewal.pk}/pay/")
    expect(page.get_by_role("heading", name="Pay your renewal", level=2)).to_be_visible()
    expect(page.get_by_text("Your renewal on Apr 10, 2027 could not be charged: Visa ending 0341 was refused (Your "
                            "card was declined.); we try again on Apr 11.", exact=False)).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"^Total due now \$198\.00$"))).to_be_visible()
    expect(page.get_by_role("button", name="Pay $198.00 with Visa ending 0341", exact=True)).to_be_visible()

    form = new_card_form(page)
    form.get_by_label("Card number").fill(VISA)
    form.get_by_label("Expiry month").fill("12")
    form.get_by_label("Expiry year").fill("2031")
    form.get_by_label("Security code (CVC)").fill("123")
    form.get_by_role("button", name="Save card and pay $198.00", exact=True).click()

    loaded(page, "/billing/licenses/")
    expect(page.get_by_role("status").filter(has_text="Paid:")).to_have_text(PAID)
    expect(past_due_banner(page)).to_have_count(0)
    for name, path in TABS:
        open_tab(page, name, path)
        expect(past_due_banner(page), f"the {name} tab still shows the past-due banner").to_have_count(0)
        expect(page.get_by_role("link", name="Pay now")).to_have_count(0)
    assert_renewal_paid(owner, renewal)


# --- (b) the next-renewal line -------------------------------------------------------------------

def test_the_licenses_tab_says_when_what_and_how_much_renews_next(page: Page, catalogue):
    owner = owner_on_test_clock(datetime.datetime(2027, 3, 10, 9, tzinfo=UTC))
    account = owner.account
    add_card(account, VISA)
    buy_directly(account, owner, quantity=5)
    log_in(page, owner.email)

    # 5 Pro monthly at $99 = $495.00, 10% bracket from 5 licenses: -$49.50, so $445.50 on Apr 10.
    line = page.get_by_text(re.compile(r"^Next renewal:"))
    expect(line).to_have_text("Next renewal: Apr 10, 2027, 5 Pro monthly: $445.50, charged to Visa ending 4242.")
    expect(line.get_by_role("time")).to_have_attribute("datetime", "2027-04-10")
    expect(page.get_by_role("table", name="Your licenses").locator("tbody tr")).to_have_count(5)

    # Once that renewal has gone through, the line moves on to the next one.
    clock_advance(account=account, to=datetime.datetime(2027, 4, 10, 12, tzinfo=UTC))
    page.reload()
    loaded(page, "/billing/licenses/")
    expect(line).to_have_text("Next renewal: May 10, 2027, 5 Pro monthly: $445.50, charged to Visa ending 4242.")
    expect(past_due_banner(page)).to_have_count(0)


# --- (c) the same by keyboard --------------------------------------------------------------------

def test_pay_now_by_keyboard_only(page: Page, past_due):
    owner, renewal = past_due
    log_in(page, owner.email)

    pay_now = past_due_banner(page).get_by_role("link", name="Pay now", exact=True)
    tab_to(page, pay_now)
    assert_focus_shown(pay_now)
    page.keyboard.press("Enter")
    loaded(page, f"/billing/renewals/{renewal.pk}/pay/")
    expect(page.get_by_role("heading", name="Pay your renewal", level=2)).to_be_visible()

    # The default card declines: Enter on its button says so and charges nothing.
    pay_default = page.get_by_role("button", name="Pay $198.00 with Visa ending 0341", exact=True)
    tab_to(page, pay_default)
    assert_focus_shown(pay_default)
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert").filter(has_text="Nothing was charged")).to_have_text(
        "Your card was declined. Nothing was charged: try another card.")
    renewal.refresh_from_db()
    assert renewal.status == Renewal.PAST_DUE

    # A new card, typed in field after field with Tab, paid with Enter.
    form = new_card_form(page)
    tab_to(page, form.get_by_label("Card number"))
    page.keyboard.type(VISA)
    for label, keys in [("Expiry month", "12"), ("Expiry year", "2031"), ("Security code (CVC)", "123")]:
        page.keyboard.press("Tab")
        expect(form.get_by_label(label), f"Tab from the field before goes to {label}").to_be_focused()
        page.keyboard.type(keys)
    page.keyboard.press("Tab")
    save_and_pay = form.get_by_role("button", name="Save card and pay $198.00", exact=True)
    expect(save_and_pay).to_be_focused()
    assert_focus_shown(save_and_pay)
    page.keyboard.press("Enter")

    loaded(page, "/billing/licenses/")
    expect(page.get_by_role("status").filter(has_text="Paid:")).to_have_text(PAID)
    expect(past_due_banner(page)).to_have_count(0)
    assert_renewal_paid(owner, renewal)
