"""Plan changes on the Licenses tab in a real browser: an upgrade with its live summary, two licenses
changed together, a downgrade scheduled and undone, and the modal by keyboard.

Same set-up as test_billing_flow.py and test_renewals_flow.py: an empty database with the admin's
catalogue, Debian's Chromium against the live server, and a person's way of finding things (roles,
labels, names). The account is on a test clock as in tests/billing/test_plan_changes.py: it starts on
Mar 1, 2027 (monthly licenses renew on the 1st; March has 31 days) and stands at Mar 11, so 21 of 31
days are left. Prices: Basic $49, Pro $99, Premium $149 a month.
"""

import datetime
import re
from decimal import Decimal

import pytest
from playwright.sync_api import Locator, Page, expect

from billing.clocks import clock_advance
from invoices.models import Invoice
from licenses.models import License, PlanChange
from payments.models import PaymentAttempt
from tests.browser.test_billing_flow import VISA, loaded, log_in, no_page_load_since_marker, open_tab
from tests.browser.test_renewals_flow import add_card, assert_focus_shown, owner_on_test_clock, tab_to
from tests.helpers import buy_directly

pytestmark = pytest.mark.browser

D = Decimal
UTC = datetime.UTC
MAR_1 = datetime.datetime(2027, 3, 1, 9, tzinfo=UTC)
MAR_11 = datetime.datetime(2027, 3, 11, 9, tzinfo=UTC)


# --- set-up: an owner with licenses, ten days into March ------------------------------------------

@pytest.fixture
def owner_on_mar_11(catalogue):
    """Returns a function: buy(tier, quantity) -> the owner and the licenses bought on Mar 1, at Mar 11."""

    def buy(tier="pro", quantity=1):
        owner = owner_on_test_clock(MAR_1)
        add_card(owner.account, VISA)
        licenses = list(License.objects.filter(
            purchase=buy_directly(owner.account, owner, tier=tier, period="monthly", quantity=quantity)
        ).order_by("pk"))
        clock_advance(account=owner.account, to=MAR_11)
        owner.account.refresh_from_db()
        return owner, licenses

    return buy


# --- helpers: what a person sees and does ---------------------------------------------------------

def licenses_table(page: Page) -> Locator:
    return page.get_by_role("table", name="Your licenses")


def license_row(page: Page, lic: License) -> Locator:
    """The row of one license, found by its number in the License column."""
    return licenses_table(page).get_by_role("row").filter(
        has=page.get_by_role("cell", name=f"#{lic.pk}", exact=True))


def change_modal(page: Page) -> Locator:
    return page.get_by_role("dialog", name="Change plan")


def figure(modal: Locator, name: str) -> Locator:
    return modal.locator(f'[data-summary="{name}"]')


def expect_upgrade_summary(modal: Locator, *, credit: str, charge: str, total: str) -> None:
    expect(figure(modal, "credit_unused")).to_have_text(credit)
    expect(figure(modal, "charge_new")).to_have_text(charge)
    expect(figure(modal, "credit_applied")).to_have_attribute("value", "0.00")
    expect(figure(modal, "total_due")).to_have_text(total)
    expect(modal.get_by_role("row", name=re.compile(rf"^Total due now {re.escape(total)}$"))).to_be_visible()


def open_change_plan(page: Page, lic: License) -> Locator:
    page.evaluate("window.__marker = 1")
    license_row(page, lic).get_by_role("link", name=re.compile(r"^Change plan")).click()
    modal = change_modal(page)
    expect(modal).to_be_visible()
    expect(modal).to_contain_text(f"Changing license #{lic.pk}")
    return modal


# --- (a) an upgrade, its live summary and the payment ---------------------------------------------

def test_upgrade_to_premium_with_the_live_summary_and_pay(page: Page, owner_on_mar_11):
    owner, [lic] = owner_on_mar_11("pro")
    log_in(page, owner.email)
    row = license_row(page, lic)
    expect(row).to_contain_text("Pro")
    expect(row.get_by_role("link", name=f"Change plan of license #{lic.pk}")).to_be_visible()

    modal = open_change_plan(page, lic)
    period = modal.get_by_role("group", name="New billing period")
    tier = modal.get_by_role("group", name="New tier")
    expect(period.get_by_role("radio", name="Monthly")).to_be_checked()

    # Start from a downgrade (nothing to pay), then pick Premium: the summary updates in place.
    tier.get_by_role("radio", name="Basic").check()
    expect(modal.get_by_role("button", name="Schedule the change")).to_be_visible()
    expect(figure(modal, "total_due")).to_have_count(0)
    tier.get_by_role("radio", name="Premium").check()
    # Credit min($99, $99) × 21/31 = $67.06; Premium $149 × 21/31 = $100.94; total $33.88.
    expect_upgrade_summary(modal, credit="\u2212$67.06", charge="$100.94", total="$33.88")
    expect(modal.get_by_role("button", name="Schedule the change")).to_have_count(0)
    assert no_page_load_since_marker(page), "the summary must update in place, not by reloading"
    expect(tier, "the summary update must replace only the summary, not the form").to_be_visible()
    expect(modal.get_by_text(re.compile(r"The billing date stays Apr 1, 2027"))).to_be_visible()

    pay = modal.get_by_role("button", name="Pay $33.88 with Visa ending 4242", exact=True)
    expect(pay).to_be_enabled()
    pay.click()
    expect(modal).to_have_count(0)
    loaded(page, "/billing/licenses/")
    message = page.get_by_role("status").filter(has_text="Upgrade complete")
    expect(message).to_contain_text("Upgrade complete: Upgrade of 1 license to Premium monthly")
    expect(message).to_contain_text("$33.88 charged to Visa ending 4242")
    row = license_row(page, lic)
    expect(row.get_by_role("cell", name="Premium", exact=True)).to_be_visible()
    expect(row.get_by_role("cell", name="Monthly", exact=True)).to_be_visible()
    expect(row).to_contain_text("Renews Apr 1, 2027")

    invoice = PlanChange.objects.get(account=owner.account).invoice
    assert (invoice.kind, invoice.status, invoice.total) == (Invoice.CHANGE, Invoice.PAID, D("33.88"))
    lic.refresh_from_db()
    assert (lic.tier, lic.period) == ("premium", "monthly")


# --- (b) two licenses ticked together: one invoice ------------------------------------------------

def test_two_licenses_ticked_together_are_upgraded_on_one_invoice(page: Page, owner_on_mar_11):
    owner, licenses = owner_on_mar_11("basic", quantity=2)
    log_in(page, owner.email)
    for lic in licenses:
        page.get_by_role("checkbox", name=f"Select license #{lic.pk}").check()
    page.evaluate("window.__marker = 1")
    page.get_by_role("button", name="Change plan for selected").click()
    modal = change_modal(page)
    expect(modal).to_be_visible()
    for lic in licenses:
        expect(modal).to_contain_text(f"license #{lic.pk} (Basic monthly, renews Apr 1, 2027)")

    # Back and forth on the tier, to see the summary follow: Premium, then Pro.
    tier = modal.get_by_role("group", name="New tier")
    tier.get_by_role("radio", name="Premium").check()
    # Each: credit $49 × 21/31 = $33.19, Premium $149 × 21/31 = $100.94.
    expect_upgrade_summary(modal, credit="\u2212$66.38", charge="$201.88", total="$135.50")
    tier.get_by_role("radio", name="Pro").check()
    # Each: credit $33.19, Pro $99 × 21/31 = $67.06; two of each: −$66.38 + $134.12 = $67.74.
    expect_upgrade_summary(modal, credit="\u2212$66.38", charge="$134.12", total="$67.74")
    assert no_page_load_since_marker(page)

    modal.get_by_role("button", name="Pay $67.74 with Visa ending 4242", exact=True).click()
    expect(modal).to_have_count(0)
    loaded(page, "/billing/licenses/")
    expect(page.get_by_role("status").filter(has_text="Upgrade complete")).to_contain_text(
        "$67.74 charged to Visa ending 4242")
    for lic in licenses:
        expect(license_row(page, lic).get_by_role("cell", name="Pro", exact=True)).to_be_visible()

    open_tab(page, "Invoices", "/billing/invoices/")
    invoices = page.get_by_role("table", name="Your invoices").locator("tbody tr")
    expect(invoices.filter(has_text="$67.74")).to_have_count(1)
    change = PlanChange.objects.get(account=owner.account)
    assert change.licenses.count() == 2 and change.invoice.total == D("67.74")
    assert Invoice.objects.filter(account=owner.account, kind=Invoice.CHANGE).count() == 1
    assert set(License.objects.filter(account=owner.account).values_list("tier", flat=True)) == {"pro"}


# --- (c) a downgrade scheduled, then undone -------------------------------------------------------

def test_downgrade_is_scheduled_shown_on_the_row_and_undone(page: Page, owner_on_mar_11):
    owner, [lic] = owner_on_mar_11("pro")
    log_in(page, owner.email)
    modal = open_change_plan(page, lic)
    modal.get_by_role("group", name="New tier").get_by_role("radio", name="Basic").check()
    expect(modal.get_by_text(re.compile(r"stays Pro monthly until Apr 1, 2027, then renews as Basic monthly"))
           ).to_be_visible()
    expect(modal.get_by_role("button", name=re.compile(r"^Pay"))).to_have_count(0)
    modal.get_by_role("button", name="Schedule the change", exact=True).click()

    expect(modal).to_have_count(0)
    loaded(page, "/billing/licenses/")
    expect(page.get_by_role("status").filter(has_text="will renew as")).to_contain_text(
        f"License #{lic.pk} will renew as Basic monthly on Apr 1, 2027")
    row = license_row(page, lic)
    expect(row).to_contain_text("as Basic monthly")
    expect(row.get_by_role("cell", name="Pro", exact=True)).to_be_visible()  # until the billing date
    expect(row.get_by_role("link", name=re.compile(r"^Change plan"))).to_have_count(0)
    expect(page.get_by_text(re.compile(r"^Next renewal:"))).to_contain_text("$49.00")

    row.get_by_role("button", name=re.compile(r"^Undo change")).click()
    expect(row.get_by_text("as Basic monthly")).to_have_count(0)
    expect(row.get_by_role("button", name=re.compile(r"^Undo change"))).to_have_count(0)
    expect(row.get_by_role("link", name=f"Change plan of license #{lic.pk}")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="as it is now")).to_contain_text(
        f"License #{lic.pk} will renew as Pro monthly, as it is now.")
    lic.refresh_from_db()
    assert (lic.tier, lic.next_tier) == ("pro", "")
    assert not PaymentAttempt.objects.filter(purpose=PaymentAttempt.CHANGE).exists()

    page.reload()
    loaded(page, "/billing/licenses/")
    expect(license_row(page, lic)).not_to_contain_text("as Basic monthly")


# --- (d) the modal by keyboard --------------------------------------------------------------------

def test_change_plan_by_keyboard_only(page: Page, owner_on_mar_11):
    owner, [lic] = owner_on_mar_11("pro")
    log_in(page, owner.email)
    change_plan = license_row(page, lic).get_by_role("link", name=f"Change plan of license #{lic.pk}")
    tab_to(page, change_plan)
    assert_focus_shown(change_plan)
    page.keyboard.press("Enter")
    modal = change_modal(page)
    expect(modal).to_be_visible()
    assert modal.evaluate("el => el.contains(document.activeElement)"), "focus must move into the modal"

    # Tab reaches each radio group (on its checked radio); arrow keys move within it.
    monthly = modal.get_by_role("radio", name="Monthly")
    tab_to(page, monthly, limit=10)
    assert_focus_shown(monthly)
    premium = modal.get_by_role("radio", name="Premium")
    page.keyboard.press("Tab")
    expect(premium, "Tab from the period goes to the tier").to_be_focused()
    assert_focus_shown(premium)
    page.keyboard.press("ArrowLeft")
    pro = modal.get_by_role("radio", name="Pro")
    expect(pro).to_be_focused()
    expect(pro).to_be_checked()
    expect(modal.get_by_role("alert")).to_have_text(f"License #{lic.pk} is already Pro monthly.")
    expect(modal.get_by_role("button", name="Pay", exact=True)).to_be_disabled()
    page.keyboard.press("ArrowRight")
    expect(premium).to_be_checked()

    pay = modal.get_by_role("button", name="Pay $33.88 with Visa ending 4242", exact=True)
    expect(pay).to_be_enabled()
    tab_to(page, pay, limit=10)
    assert_focus_shown(pay)
    page.keyboard.press("Enter")
    expect(modal).to_have_count(0)
    loaded(page, "/billing/licenses/")
    expect(page.get_by_role("status").filter(has_text="Upgrade complete")).to_contain_text("$33.88")
    lic.refresh_from_db()
    assert lic.tier == "premium"


def test_escape_closes_the_change_modal_and_focus_returns_to_the_row(page: Page, owner_on_mar_11):
    owner, [lic] = owner_on_mar_11("pro")
    log_in(page, owner.email)
    change_plan = license_row(page, lic).get_by_role("link", name=f"Change plan of license #{lic.pk}")
    tab_to(page, change_plan)
    page.keyboard.press("Enter")
    modal = change_modal(page)
    expect(modal).to_be_visible()
    page.keyboard.press("Escape")
    expect(modal).to_have_count(0)
    expect(change_plan).to_be_focused()
    assert not PlanChange.objects.exists()


# --- without JavaScript ---------------------------------------------------------------------------

def test_change_plan_for_selected_works_as_a_plain_page_without_javascript(no_js_context, owner_on_mar_11):
    owner, licenses = owner_on_mar_11("basic", quantity=2)
    page = no_js_context.new_page()
    log_in(page, owner.email)
    for lic in licenses:
        page.get_by_role("checkbox", name=f"Select license #{lic.pk}").check()
    page.get_by_role("button", name="Change plan for selected").click()
    loaded(page, "/billing/licenses/change/")
    expect(page.get_by_role("heading", name="Change plan")).to_be_visible()
    expect(page.get_by_role("dialog")).to_have_count(0)
    # Opens on the next tier up: Pro.
    expect(page.get_by_role("radio", name="Pro")).to_be_checked()
    expect(figure(page.locator("main"), "total_due")).to_have_text("$67.74")

    page.get_by_role("radio", name="Premium").check()
    expect(figure(page.locator("main"), "total_due")).to_have_text("$67.74")  # until the person asks
    page.get_by_role("button", name="Update summary").click()
    expect(figure(page.locator("main"), "total_due")).to_have_text("$135.50")
    page.get_by_role("button", name="Pay $135.50 with Visa ending 4242", exact=True).click()
    loaded(page, "/billing/licenses/")
    expect(page.get_by_text("$135.50 charged to Visa ending 4242", exact=False)).to_be_visible()
    assert set(License.objects.filter(account=owner.account).values_list("tier", flat=True)) == {"premium"}
    assert PlanChange.objects.get(account=owner.account).invoice.total == D("135.50")
