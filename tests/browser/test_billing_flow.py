"""The Billing area in a real browser, used the way a person would: by labels, roles and keys.

Each test starts from an empty database with the admin's catalogue (prices, token packages,
WELCOME10 and FLAT50) and drives Debian's Chromium against the live server.
"""

import datetime
import re
import subprocess

import pytest
from playwright.sync_api import Page, expect

from accounts.models import User
from invoices.models import Invoice
from licenses.models import License, Purchase
from payments.services import card_add
from tests.factories import PASSWORD, AccountFactory, UserFactory

pytestmark = pytest.mark.browser

VISA = "4242 4242 4242 4242"
DECLINES_CHARGES = "4000 0000 0000 0341"  # saves, then every charge is declined
INVOICE_NUMBER = re.compile(r"PB-\d{4}-\d{6}")


def usd(amount: str) -> re.Pattern:
    """An amount as the Order Summary shows it: "4470.00", and also "$4,470.00" should it be formatted."""
    whole, cents = amount.split(".")
    digits = ",?".join(whole)
    return re.compile(rf"^\s*\$?{digits}\.{cents}\s*$")


# --- helpers: what a person does ------------------------------------------------------------------

def loaded(page: Page, path: str) -> None:
    """Wait until the page at `path` has fully loaded, so its scripts (HTMX) are running.

    A click that lands before then is a plain link click; that works too (see the no-JavaScript
    test), but these tests are about the HTMX modals.
    """
    page.wait_for_url(re.compile(re.escape(path) + r"(\?.*)?$"))


def open_tab(page: Page, name: str, path: str) -> None:
    page.get_by_role("navigation", name="Billing").get_by_role("link", name=name, exact=True).click()
    loaded(page, path)
    expect(page.get_by_role("link", name=name, exact=True)).to_have_attribute("aria-current", "page")


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    loaded(page, "/billing/licenses/")
    expect(page.get_by_role("heading", name="Billing", level=1)).to_be_visible()


def owner_with_card(number: str, email: str = "owner@booths.example") -> User:
    """An account owner whose default card is `number` (saved through the sandbox, as the UI does)."""
    user = UserFactory(email=email, account=AccountFactory(name="Booths Ltd"))
    card_add(account=user.account, number=number.replace(" ", ""), exp_month=12,
             exp_year=datetime.date.today().year + 3, cvc="123")
    return user


def token_balance(page: Page):
    """The token balance at the top right of every Billing tab."""
    return page.locator("[data-token-balance]")


def no_page_load_since_marker(page: Page) -> bool:
    return page.evaluate("window.__marker") == 1


# --- the whole journey ----------------------------------------------------------------------------

def test_owner_signs_up_adds_card_buys_licenses_downloads_invoice_and_tops_up(page: Page, catalogue, pdftotext,
                                                                              tmp_path, mailoutbox):
    # Sign up.
    page.goto("/signup/")
    page.get_by_label("Company name").fill("Acme Photo Booths")
    page.get_by_label("Email").fill("owner@acme.example")
    page.get_by_label("Password").fill("Shutter-click 2026 booth")
    page.get_by_role("button", name="Sign up").click()
    loaded(page, "/billing/licenses/")
    expect(page.get_by_role("heading", name="Billing", level=1)).to_be_visible()
    expect(token_balance(page)).to_have_text("0 tokens")
    expect(page.get_by_text("Confirm your email to get your 50 free tokens")).to_be_visible()

    # The welcome tokens come with the link in the sign-up email.
    [email] = mailoutbox
    page.goto(re.search(r"https?://[^/\s]+(/verify-email/\S+/)", email.body).group(1))
    loaded(page, "/billing/licenses/")
    expect(page.get_by_text("Your email is confirmed: 50 free tokens were added.")).to_be_visible()
    expect(token_balance(page)).to_have_text("50 tokens")
    expect(page.get_by_text("Confirm your email to get your 50 free tokens")).to_have_count(0)

    # Payment tab: add a card; the first one becomes the default.
    open_tab(page, "Payment", "/billing/payment/")
    page.get_by_role("link", name="Add card", exact=True).click()
    card_dialog = page.get_by_role("dialog", name="Add card")
    expect(card_dialog).to_be_visible()
    card_dialog.get_by_label("Card number").fill(VISA)
    card_dialog.get_by_label("Expiry month").fill("12")
    card_dialog.get_by_label("Expiry year").fill(str(datetime.date.today().year + 3))
    card_dialog.get_by_label("CVC").fill("123")
    card_dialog.get_by_role("button", name="Save card").click()
    expect(page.get_by_text("Visa ending 4242 added. It is your default card.")).to_be_visible()
    card_row = page.get_by_role("listitem").filter(has_text="ending 4242")
    expect(card_row).to_be_visible()
    expect(card_row.get_by_text("Default", exact=True)).to_be_visible()
    expect(card_row).to_contain_text("Visa")

    # Licenses tab: Add License opens the purchase modal without leaving the page.
    open_tab(page, "Licenses", "/billing/licenses/")
    page.evaluate("window.__marker = 1")
    page.get_by_role("link", name="Add License", exact=True).click()
    modal = page.get_by_role("dialog", name="Add License")
    expect(modal).to_be_visible()
    total_due = modal.locator('[data-summary="total_due"]')
    expect(total_due).to_have_text(usd("99.00"))  # the default: 1 Pro license, monthly

    def change_and_see_total(action, expected_total):
        before = total_due.inner_text()
        action()
        expect(total_due).not_to_have_text(before)
        expect(total_due).to_have_text(expected_total)
        assert no_page_load_since_marker(page), "the Order Summary must update in place, not by reloading"
        expect(modal.get_by_role("group", name="2. Tier"),
               "the summary update must replace only the summary, not the form").to_be_visible()

    change_and_see_total(lambda: modal.get_by_role("radio", name="Annual").check(), usd("990.00"))
    change_and_see_total(lambda: modal.get_by_role("radio", name="Premium").check(), usd("1490.00"))
    change_and_see_total(lambda: modal.get_by_label("Quantity").fill("3"), usd("4470.00"))
    change_and_see_total(lambda: modal.get_by_label("Coupon code").press_sequentially("WELCOME10"), usd("4023.00"))
    expect(modal.locator("[data-coupon-outcome]")).to_have_text("WELCOME10: 10% off")
    expect(modal.get_by_role("rowheader", name="Coupon WELCOME10: 10% off")).to_be_visible()
    assert no_page_load_since_marker(page)

    # The pay button names the amount and the card.
    modal.get_by_role("button", name="Pay $4,023.00 with Visa ending 4242").click()
    expect(modal).to_have_count(0)  # HTMX sends the browser to the Licenses tab
    loaded(page, "/billing/licenses/")
    expect(page.get_by_text(re.compile(r"Purchase complete"))).to_be_visible()
    licenses = page.get_by_role("table", name="Your licenses").locator("tbody tr")
    expect(licenses).to_have_count(3)
    for row in licenses.all():
        expect(row).to_contain_text("Premium")
        expect(row).to_contain_text("Annual")
        expect(row).to_contain_text("Active")
    assert License.objects.filter(account__name="Acme Photo Booths").count() == 3

    # Invoices tab: one invoice, whose PDF downloads and names it.
    open_tab(page, "Invoices", "/billing/invoices/")
    invoices = page.get_by_role("table", name="Your invoices").locator("tbody tr")
    expect(invoices).to_have_count(1)
    expect(invoices.first).to_contain_text("$4,023.00")
    number = INVOICE_NUMBER.search(invoices.first.inner_text()).group(0)
    with page.expect_download() as download_info:
        invoices.first.get_by_role("link", name="PDF").click()
    pdf_path = tmp_path / "invoice.pdf"
    download_info.value.save_as(pdf_path)
    pdf = pdf_path.read_bytes()
    assert pdf.startswith(b"%PDF"), pdf[:20]
    text = subprocess.run([pdftotext, "-layout", str(pdf_path), "-"], check=True, capture_output=True,
                          text=True, timeout=60).stdout
    assert number in text
    assert "4,023.00" in text

    # Top Up at the top right: Standard package, 500 tokens.
    expect(token_balance(page)).to_have_text("50 tokens")
    page.get_by_role("link", name="Top Up").click()
    top_up = page.get_by_role("dialog", name="Top Up tokens")
    expect(top_up).to_be_visible()
    top_up.get_by_role("radio", name="Standard").check()
    top_up.get_by_role("button", name="Pay $45.00 with Visa ending 4242").click()
    expect(top_up).to_have_count(0)  # back to the tab it was opened from
    loaded(page, "/billing/invoices/")
    expect(token_balance(page)).to_have_text("550 tokens")
    expect(page.get_by_text("500 tokens added")).to_be_visible()
    assert Invoice.objects.filter(account__name="Acme Photo Booths").count() == 2


def test_declined_card_keeps_the_form_open_and_buys_nothing(page: Page, catalogue):
    owner = owner_with_card(DECLINES_CHARGES)
    log_in(page, owner.email)
    page.evaluate("window.__marker = 1")
    page.get_by_role("link", name="Add License", exact=True).click()
    modal = page.get_by_role("dialog", name="Add License")
    expect(modal).to_be_visible()
    total_due = modal.locator('[data-summary="total_due"]')
    modal.get_by_label("Quantity").fill("2")
    expect(total_due).to_have_text(usd("198.00"))

    pay = modal.get_by_role("button", name="Pay $198.00 with Visa ending 0341")
    pay.click()
    expect(modal.get_by_role("alert")).to_contain_text("Your card was declined.")
    expect(modal).to_be_visible()
    expect(modal.get_by_label("Quantity")).to_have_value("2")
    expect(pay).to_be_enabled()
    assert no_page_load_since_marker(page)
    assert not License.objects.filter(account=owner.account).exists()
    assert not Purchase.objects.filter(account=owner.account).exists()
    assert not Invoice.objects.filter(account=owner.account).exists()


def test_add_license_works_as_a_plain_page_without_javascript(no_js_context, catalogue):
    owner = owner_with_card(VISA)
    page = no_js_context.new_page()
    log_in(page, owner.email)

    page.get_by_role("link", name="Add License", exact=True).click()
    loaded(page, "/billing/licenses/add/")
    expect(page.get_by_role("heading", name="Add License")).to_be_visible()
    expect(page.get_by_role("dialog")).to_have_count(0)
    total_due = page.locator('[data-summary="total_due"]')
    expect(total_due).to_have_text(usd("99.00"))

    page.get_by_role("radio", name="Annual").check()
    page.get_by_role("radio", name="Basic").check()
    page.get_by_label("Quantity").fill("2")
    page.get_by_label("Coupon code").fill("flat50")
    expect(total_due).to_have_text(usd("99.00"))  # nothing changes until the person asks
    page.get_by_role("button", name="Update summary").click()
    loaded(page, "/billing/licenses/add/")  # a POST that buys nothing: no tokens end up in the URL
    expect(total_due).to_have_text(usd("930.00"))  # 2 × $490.00 − $50.00
    expect(page.locator("[data-coupon-outcome]")).to_have_text("FLAT50: $50.00 off")
    expect(page.get_by_role("radio", name="Annual")).to_be_checked()
    expect(page.get_by_role("radio", name="Basic")).to_be_checked()
    expect(page.get_by_label("Quantity")).to_have_value("2")

    page.get_by_role("button", name="Pay $930.00 with Visa ending 4242").click()
    loaded(page, "/billing/licenses/")
    expect(page.get_by_text(re.compile(r"Purchase complete"))).to_be_visible()
    licenses = page.get_by_role("table", name="Your licenses").locator("tbody tr")
    expect(licenses).to_have_count(2)
    expect(licenses.first).to_contain_text("Basic")
    assert License.objects.filter(account=owner.account, tier="basic", period="annual").count() == 2
    assert Purchase.objects.get(account=owner.account).total_due == 930


def test_purchase_modal_by_keyboard_opens_and_closes_with_escape(page: Page, catalogue):
    owner = owner_with_card(VISA)
    log_in(page, owner.email)
    add_license = page.get_by_role("link", name="Add License", exact=True)

    # Tab through the page until Add License has the focus (a person cannot click).
    for _ in range(30):
        page.keyboard.press("Tab")
        if add_license.evaluate("el => el === document.activeElement"):
            break
    else:
        pytest.fail("Add License cannot be reached with the Tab key")
    expect(add_license).to_be_focused()

    page.keyboard.press("Enter")
    modal = page.get_by_role("dialog", name="Add License")
    expect(modal).to_be_visible()
    assert modal.evaluate("el => el.contains(document.activeElement)"), "focus must move into the modal"

    page.keyboard.press("Escape")
    expect(modal).to_have_count(0)
    expect(add_license).to_be_focused()  # focus goes back to where the person was

    # It opens again, and the Close button also closes it.
    page.keyboard.press("Enter")
    expect(modal).to_be_visible()
    modal.get_by_role("button", name="Close").press("Enter")
    expect(modal).to_have_count(0)
    assert not License.objects.filter(account=owner.account).exists()


def test_a_click_before_the_summary_refreshes_never_pays_a_total_not_shown(page: Page, catalogue):
    owner = owner_with_card(VISA)
    log_in(page, owner.email)
    page.get_by_role("link", name="Add License", exact=True).click()
    modal = page.get_by_role("dialog", name="Add License")
    pay = modal.locator("[data-pay-button]")
    expect(pay).to_have_text("Pay $99.00 with Visa ending 4242")

    # Faster than any person: a new quantity and a click on Pay in the same instant, before the
    # summary has been asked for the new total.
    page.evaluate("""() => {
        const quantity = document.querySelector('#id_quantity');
        quantity.value = '48';
        quantity.dispatchEvent(new Event('input', {bubbles: true}));
        document.querySelector('[data-pay-button]').click();
    }""")
    # 48 × $99.00 = $4,752.00 less 15%: the summary shows it, with a button for that amount.
    expect(pay).to_have_text("Pay $4,039.20 with Visa ending 4242")
    expect(modal).to_be_visible()
    assert not Purchase.objects.filter(account=owner.account).exists()

    pay.click()
    loaded(page, "/billing/licenses/")
    expect(page.get_by_text("$4,039.20 charged to Visa ending 4242")).to_be_visible()
    assert str(Purchase.objects.get(account=owner.account).total_due) == "4039.20"
