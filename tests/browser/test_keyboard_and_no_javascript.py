"""Buying, topping up, cancelling and removing a card by keyboard alone and with JavaScript off, and the
feedback a person gets: confirmations before a license ends or a card goes (a dialog, or a page of its
own without JavaScript), messages beside the form that was used, and the focus kept where the person is.

The upgrade's keyboard and no-JavaScript paths are in test_plan_changes_flow.py; the purchase's
no-JavaScript path is in test_billing_flow.py.
"""

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from licenses.models import License
from payments.models import Card
from tests.browser.test_billing_flow import VISA, loaded, log_in, owner_with_card, token_balance
from tests.browser.test_renewals_flow import add_card, tab_to
from tests.helpers import buy_directly
from tokens.models import TopUp

pytestmark = pytest.mark.browser

MASTERCARD = "5555 5555 5555 4444"


def owner_with_a_license(catalogue):
    owner = owner_with_card(VISA)
    [lic] = buy_directly(owner.account, owner, tier="pro", period="annual", quantity=1).licenses.all()
    return owner, lic


def license_row(page: Page, lic: License) -> Locator:
    return page.get_by_role("table", name="Your licenses").get_by_role("row").filter(
        has=page.get_by_role("cell", name=f"#{lic.pk}", exact=True))


def focused(locator: Locator) -> bool:
    return locator.evaluate("el => el === document.activeElement")


# --- by keyboard alone ----------------------------------------------------------------------------

def test_buying_licenses_by_keyboard_only(page: Page, catalogue):
    owner = owner_with_card(VISA)
    log_in(page, owner.email)
    tab_to(page, page.get_by_role("link", name="Add License", exact=True))
    page.keyboard.press("Enter")
    modal = page.get_by_role("dialog", name="Add License")
    expect(modal).to_be_visible()

    quantity = modal.get_by_label("Quantity")
    tab_to(page, quantity, limit=20)
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    pay = modal.get_by_role("button", name="Pay $297.00 with Visa ending 4242", exact=True)
    expect(pay).to_be_enabled()  # the server's summary for 3 × $99.00, with its own button
    tab_to(page, pay, limit=10)
    page.keyboard.press("Enter")

    expect(modal).to_have_count(0)
    loaded(page, "/billing/licenses/")
    done = page.get_by_role("status").filter(has_text="Purchase complete")
    expect(done).to_contain_text("$297.00 charged to Visa ending 4242")
    expect(done).to_contain_text(re.compile(r"Invoice PB-\d{4}-\d{6}"))
    assert License.objects.filter(account=owner.account).count() == 3


def test_topping_up_by_keyboard_only_with_a_package_chosen_and_its_price_on_the_button(page: Page, catalogue):
    owner = owner_with_card(VISA)
    log_in(page, owner.email)
    tab_to(page, page.get_by_role("link", name="Top Up", exact=True))
    page.keyboard.press("Enter")
    top_up = page.get_by_role("dialog", name="Top Up tokens")
    expect(top_up).to_be_visible()

    # It opens with a package chosen and a button that says what it costs.
    starter = top_up.get_by_role("radio", name=re.compile(r"^Starter"))
    expect(starter).to_be_checked()
    expect(top_up.get_by_role("button", name="Pay $10.00 with Visa ending 4242", exact=True)).to_be_enabled()

    tab_to(page, starter, limit=15)
    page.keyboard.press("ArrowRight")
    expect(top_up.get_by_role("radio", name=re.compile(r"^Standard"))).to_be_checked()
    pay = top_up.get_by_role("button", name="Pay $45.00 with Visa ending 4242", exact=True)
    expect(pay).to_be_enabled()
    tab_to(page, pay, limit=10)
    page.keyboard.press("Enter")

    expect(top_up).to_have_count(0)
    loaded(page, "/billing/licenses/")
    expect(page.get_by_role("status").filter(has_text="500 tokens added")).to_contain_text(
        "$45.00 charged to Visa ending 4242")
    expect(token_balance(page)).to_have_text("500 tokens")


def test_cancel_asks_in_a_dialog_and_the_focus_stays_on_the_row_through_cancel_and_undo(page: Page, catalogue):
    owner, lic = owner_with_a_license(catalogue)
    log_in(page, owner.email)
    row = license_row(page, lic)
    cancel = row.get_by_role("link", name=f"Cancel license #{lic.pk}")
    tab_to(page, cancel)
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name=f"Cancel license #{lic.pk}?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("then ends and is not renewed")

    # Escape changes nothing and puts the person back on Cancel.
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(cancel).to_be_focused()
    assert not License.objects.get(pk=lic.pk).cancel_at_period_end

    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    tab_to(page, dialog.get_by_role("button", name=f"Cancel license #{lic.pk}", exact=True), limit=5)
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0)
    expect(row.get_by_text("Cancelling")).to_be_visible()
    undo = row.get_by_role("button", name=f"Undo cancel of license #{lic.pk}")
    expect(undo).to_be_focused()  # not dropped to <body>
    assert License.objects.get(pk=lic.pk).cancel_at_period_end

    page.keyboard.press("Enter")
    expect(row.get_by_text("Active")).to_be_visible()
    expect(row.get_by_role("link", name=f"Cancel license #{lic.pk}")).to_be_focused()
    assert not License.objects.get(pk=lic.pk).cancel_at_period_end


def test_undo_cancel_takes_the_focus_only_once_it_works_so_an_enter_at_once_keeps_it_on_the_row(page: Page,
                                                                                                catalogue):
    # HTMX wires up a swapped-in row's buttons a moment after the row is in (its htmx:load). The focus must
    # not reach Undo cancel before that: an Enter pressed at once would post it as a plain page, and the
    # focus would start again at the top.
    owner, lic = owner_with_a_license(catalogue)
    log_in(page, owner.email)
    page.evaluate("htmx.config.defaultSettleDelay = 500")  # widens that moment, so a press at once lands in it
    row = license_row(page, lic)
    tab_to(page, row.get_by_role("link", name=f"Cancel license #{lic.pk}"))
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name=f"Cancel license #{lic.pk}?")
    tab_to(page, dialog.get_by_role("button", name=f"Cancel license #{lic.pk}", exact=True), limit=5)
    page.keyboard.press("Enter")
    undo = row.get_by_role("button", name=f"Undo cancel of license #{lic.pk}")
    expect(undo).to_be_focused()
    page.keyboard.press("Enter")
    expect(row.get_by_text("Active")).to_be_visible()
    expect(row.get_by_role("link", name=f"Cancel license #{lic.pk}")).to_be_focused()
    assert not License.objects.get(pk=lic.pk).cancel_at_period_end


def test_removing_the_default_card_says_which_card_takes_over_and_the_message_takes_the_focus(page: Page,
                                                                                            catalogue):
    owner = owner_with_card(VISA)
    add_card(owner.account, MASTERCARD)
    log_in(page, owner.email)
    page.get_by_role("navigation", name="Billing").get_by_role("link", name="Payment", exact=True).click()
    loaded(page, "/billing/payment/")
    page.get_by_role("link", name="Remove Visa ending 4242").click()
    dialog = page.get_by_role("dialog", name="Remove Visa ending 4242?")
    expect(dialog).to_contain_text("Mastercard ending 4444 becomes your default card")
    dialog.get_by_role("button", name="Remove Visa ending 4242", exact=True).click()

    expect(dialog).to_have_count(0)
    said = page.locator("#cards").get_by_role("status")
    expect(said).to_have_text("Visa ending 4242 removed. Mastercard ending 4444 is now your default card.")
    expect(said).to_be_focused()
    assert Card.objects.get(account=owner.account, is_default=True).last4 == "4444"


def test_billing_details_saved_is_said_beside_the_form_and_an_error_takes_it_away(page: Page, catalogue):
    owner = owner_with_card(VISA)
    log_in(page, owner.email)
    page.goto("/billing/payment/")
    form = page.locator("#billing-details")
    form.get_by_label("Billing name").fill("Booths GmbH")
    form.get_by_label("City").fill("Berlin")
    form.get_by_role("button", name="Save billing details").click()
    saved = form.get_by_role("status").filter(has_text="Billing details saved")
    expect(saved).to_be_visible()
    expect(saved).to_be_focused()
    assert saved.evaluate("el => el.getBoundingClientRect().top >= 0 && el.getBoundingClientRect().bottom"
                          " <= window.innerHeight"), "the message must be on screen"

    form.get_by_label("Billing name").fill("")
    form.get_by_role("button", name="Save billing details").click()
    refused = form.get_by_role("alert").filter(has_text="not saved")
    expect(refused).to_be_focused()
    expect(page.get_by_text("Billing details saved")).to_have_count(0)
    expect(form.get_by_label("Billing name")).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label("Billing name")).to_have_accessible_description(re.compile("This field is required"))


# --- with JavaScript off --------------------------------------------------------------------------

def test_top_up_works_as_a_plain_page_without_javascript(no_js_context, catalogue):
    owner = owner_with_card(VISA)
    page = no_js_context.new_page()
    log_in(page, owner.email)
    page.get_by_role("link", name="Top Up", exact=True).click()
    loaded(page, "/billing/tokens/top-up/")
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_role("radio", name=re.compile(r"^Starter"))).to_be_checked()
    expect(page.get_by_role("button", name="Pay $10.00 with Visa ending 4242", exact=True)).to_be_visible()

    page.get_by_role("radio", name=re.compile(r"^Large")).check()
    page.get_by_role("button", name="Update summary").click()
    loaded(page, "/billing/tokens/top-up/")  # a POST that buys nothing
    page.get_by_role("button", name="Pay $80.00 with Visa ending 4242", exact=True).click()
    loaded(page, "/billing/licenses/")
    expect(page.get_by_text("1,000 tokens added. $80.00 charged to Visa ending 4242")).to_be_visible()
    expect(token_balance(page)).to_have_text("1,000 tokens")
    assert TopUp.objects.get(account=owner.account).tokens == 1000


def test_cancel_without_javascript_asks_on_a_page_of_its_own_first(no_js_context, catalogue):
    owner, lic = owner_with_a_license(catalogue)
    page = no_js_context.new_page()
    log_in(page, owner.email)
    license_row(page, lic).get_by_role("link", name=f"Cancel license #{lic.pk}").click()
    loaded(page, f"/billing/licenses/{lic.pk}/cancel/confirm/")
    expect(page.get_by_role("heading", name=f"Cancel license #{lic.pk}?")).to_be_visible()
    assert not License.objects.get(pk=lic.pk).cancel_at_period_end  # one click ended nothing

    page.get_by_role("link", name=f"Keep license #{lic.pk}").click()
    loaded(page, "/billing/licenses/")
    expect(license_row(page, lic).get_by_text("Active")).to_be_visible()

    license_row(page, lic).get_by_role("link", name=f"Cancel license #{lic.pk}").click()
    page.get_by_role("button", name=f"Cancel license #{lic.pk}", exact=True).click()
    loaded(page, "/billing/licenses/")
    expect(page.get_by_text(f"License #{lic.pk} is cancelled. It stays active until")).to_be_visible()
    expect(license_row(page, lic).get_by_text("Cancelling")).to_be_visible()
    assert License.objects.get(pk=lic.pk).cancel_at_period_end


def test_remove_card_without_javascript_asks_on_a_page_first_and_says_what_happened_beside_the_cards(
        no_js_context, catalogue):
    owner = owner_with_card(VISA)
    add_card(owner.account, MASTERCARD)
    page = no_js_context.new_page()
    log_in(page, owner.email)
    page.goto("/billing/payment/")
    page.get_by_role("link", name="Remove Visa ending 4242").click()
    expect(page.get_by_role("heading", name="Remove Visa ending 4242?")).to_be_visible()
    expect(page.get_by_text("Mastercard ending 4444 becomes your default card")).to_be_visible()
    assert Card.objects.filter(account=owner.account).count() == 2

    page.get_by_role("button", name="Remove Visa ending 4242", exact=True).click()
    page.wait_for_url(re.compile(r"/billing/payment/#cards$"))  # back at the cards, where the message is
    expect(page.locator("#cards").get_by_role("status")).to_have_text(
        "Visa ending 4242 removed. Mastercard ending 4444 is now your default card.")
    assert list(Card.objects.filter(account=owner.account).values_list("last4", flat=True)) == ["4444"]


def test_billing_details_without_javascript_come_back_to_the_form_with_the_message(no_js_context, catalogue):
    owner = owner_with_card(VISA)
    page = no_js_context.new_page()
    log_in(page, owner.email)
    page.goto("/billing/payment/")
    form = page.locator("#billing-details")
    form.get_by_label("City").fill("Berlin")
    form.get_by_role("button", name="Save billing details").click()
    page.wait_for_url(re.compile(r"/billing/payment/#billing-details$"))
    expect(form.get_by_role("status")).to_have_text("Billing details saved. New invoices will use them.")
