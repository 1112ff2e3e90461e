"""Every page and every open modal in Chromium, on a desktop and on two phones: nothing wider than the
screen, modals that fit it (centred on a desktop, the whole screen on a phone) with the pay button on screen
without scrolling, tables that stay tables for a screen reader, controls whose edges and focus ring can be
seen, and no serious or critical violation found by axe-core (axe-playwright-python bundles it: no network).

Three tests, so the suite stays quick on a 2-core CI machine: an owner with data (licenses in every state,
two cards, invoices, tokens used at events, API keys, a renewal past due), the pages before logging in, and
finance staff over the demo books. Each visits its pages at each screen size in one logged-in browser
profile, resized in between. Screenshots of every page and modal at 1280 and 390 px are saved under
tests/browser/screenshots/ (git-ignored) for a reviewer to look at after `make test`.
"""

import datetime
import re
from collections import Counter
from pathlib import Path

import pytest
from axe_playwright_python.base import AXE_SCRIPT  # axe-core, bundled
from django.contrib.auth.models import Group
from django.core.management import call_command
from playwright.sync_api import Locator, Page, expect

from accounts.api_keys import api_key_create, api_key_revoke
from accounts.models import User
from billing.clocks import clock_advance, clock_attach
from billing.models import Renewal
from billing.top_up import tokens_top_up
from billing.usage import usage_record
from finance.management.commands.finance_demo import FINANCE_EMAIL, FINANCE_PASSWORD
from finance.models import FINANCE_GROUP, ZipJob
from invoices.models import Invoice
from licenses.models import License
from licenses.services import license_cancel, license_change_schedule
from payments.services import card_make_default
from tests.browser.test_billing_flow import DECLINES_CHARGES, VISA, loaded, log_in
from tests.browser.test_renewals_flow import add_card, tab_to
from tests.factories import AccountFactory, UserFactory
from tests.helpers import buy_directly
from tokens.services import tokens_grant_signup

pytestmark = pytest.mark.browser

UTC = datetime.UTC
SCREENSHOTS = Path(__file__).parent / "screenshots"
DESKTOP, PHONE, SMALL_PHONE = (1280, 900), (390, 844), (360, 740)
SCREENS = [DESKTOP, PHONE, SMALL_PHONE]
PHONES = [PHONE, SMALL_PHONE]
SERIOUS = {"serious", "critical"}
PAY = re.compile(r"^Pay \$")


# --- set-up: an owner who has used Billing for a while --------------------------------------------

@pytest.fixture
def busy_owner(catalogue):
    """An owner with a long email and company name (the header must still fit), on a test clock so the
    dates on screen are fixed. Seven licenses: Pro and Basic monthly past due, Premium annual active,
    cancelling and with a downgrade scheduled, and a Basic annual to upgrade; a Visa and a card that
    declines (the default); purchase, top-up and renewal invoices; tokens used at two events; two API keys,
    one revoked; and the Apr 10, 2027 renewal refused, so the past-due banner shows on every tab."""
    owner = UserFactory(email="operations.manager@northwind-photo-booths.example",
                        account=AccountFactory(name="Northwind Photo Booths & Events Ltd"))
    account = owner.account
    clock_attach(account=account, start=datetime.datetime(2027, 3, 10, 9, tzinfo=UTC))
    account.refresh_from_db()
    add_card(account, VISA)
    buy_directly(account, owner, tier="pro", quantity=2)
    premium = buy_directly(account, owner, tier="premium", period="annual", quantity=3)
    buy_directly(account, owner, tier="basic", quantity=1)
    buy_directly(account, owner, tier="basic", period="annual", quantity=1)
    tokens_grant_signup(account=account)
    tokens_top_up(account=account, package=catalogue["packages"][1], token="top-up-1")
    cancelling, downgrading, _ = License.objects.filter(purchase=premium)
    license_cancel(account=account, license=cancelling)
    for name in ("Booth 7 — main entrance, left of the stage", "Booth 8"):
        api_key_create(account=account, name=name, created_by=owner)
    api_key_revoke(account=account, api_key=account.api_keys.get(name="Booth 8"))
    card_make_default(account=account, card=add_card(account, DECLINES_CHARGES))
    clock_advance(account=account, to=datetime.datetime(2027, 4, 10, 12, tzinfo=UTC))
    renewal = Renewal.objects.get(account=account)
    assert renewal.status == Renewal.PAST_DUE
    license_change_schedule(account=account, license=downgrading, tier="pro", period="annual")
    for n, (output_type, quantity, event) in enumerate([
            ("ai_image", 40, "spring-gala-2027-main-hall"), ("ai_video", 12, "spring-gala-2027-main-hall"),
            ("photo", 300, "wedding-harbour-view"), ("ai_image", 25, "wedding-harbour-view")]):
        usage_record(account=account, output_type=output_type, quantity=quantity, event_id=event,
                     idempotency_key=f"usage-{n}")
    return owner, renewal


# --- what is checked on every page and modal -------------------------------------------------------

def resize(page: Page, size: tuple[int, int]) -> None:
    page.set_viewport_size({"width": size[0], "height": size[1]})


def at(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"


def assert_fits_the_screen(page: Page, where: str) -> None:
    """Nothing is wider than the screen: the page does not scroll sideways, no table spills out of its box,
    and an open modal lies wholly on screen without a sideways scroll of its own."""
    problems = page.evaluate("""() => {
        const width = window.innerWidth, root = document.documentElement;
        const classes = el => typeof el.className === "string" ? el.className.trim().split(/\\s+/).filter(Boolean) : [];
        const name = el => [el.tagName.toLowerCase() + (el.id ? "#" + el.id : ""), ...classes(el)].join(".");
        const problems = [];
        if (root.scrollWidth > width) {
            const wide = [...document.body.querySelectorAll("*")]
                .filter(el => el.getBoundingClientRect().right > width + 1);
            problems.push(`the page is ${root.scrollWidth} px wide: ` + wide.slice(-5).map(name).join(", "));
        }
        for (const table of document.querySelectorAll("table")) {
            if (table.closest(".visually-hidden")) continue;  // the chart's figures, for screen readers only
            const box = table.getBoundingClientRect(), parent = table.parentElement.getBoundingClientRect();
            if (box.width && box.right > parent.right + 1) {
                problems.push(`${name(table)} spills out of ${name(table.parentElement)}`);
            }
        }
        const dialog = document.querySelector("dialog[open]");
        if (dialog) {
            const box = dialog.getBoundingClientRect();
            if (box.left < 0 || box.right > width + 1) problems.push(`the modal lies at ${box.left}–${box.right} px`);
            if (dialog.scrollWidth > dialog.clientWidth + 1) {
                problems.push(`the modal scrolls sideways (${dialog.scrollWidth} px)`);
            }
        }
        return problems;
    }""")
    assert not problems, f"{where}: {problems}"


def assert_no_serious_violations(page: Page, where: str, context: str | None = None) -> None:
    """axe-core finds nothing serious or critical (contrast, names, roles, labels, ...) on the page or modal.

    axe is put into a document once (the modals of a page reuse it): parsing its half a megabyte of script
    on every check would cost the CI machine seconds per page.
    """
    if not page.evaluate("() => 'axe' in window"):
        page.evaluate(AXE_SCRIPT)
    violations = page.evaluate("context => axe.run(context || document, {resultTypes: ['violations']})"
                               ".then(results => results.violations)", context)
    serious = [f"{v['id']} ({v['impact']}): {v['help']} — " + "; ".join(str(n["target"][0]) for n in v["nodes"][:4])
               for v in violations if v["impact"] in SERIOUS]
    assert not serious, f"{where}:\n" + "\n".join(serious)


def snapshot(page: Page, name: str, size: tuple[int, int], *, full_page: bool = True) -> None:
    """A screenshot at 1280 and 390 px, for a reviewer (the smallest phone is checked, not kept)."""
    if size in (DESKTOP, PHONE):
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}-{size[0]}.png", full_page=full_page)


def check_page(page: Page, name: str, size: tuple[int, int]) -> None:
    """Fits the screen, a screenshot, and axe (at the desktop and the phone: the small phone adds nothing
    axe would see)."""
    where = f"{name} at {at(size)}"
    assert_fits_the_screen(page, where)
    snapshot(page, name, size)
    if size != SMALL_PHONE:
        assert_no_serious_violations(page, where)


def check_modal(page: Page, modal: Locator, name: str, size: tuple[int, int], pay: Locator, *,
                confirmation: bool = False) -> None:
    """As check_page, for an open modal: centred on a desktop; on a phone the whole screen (a short
    confirmation: centred there too), with its pay (or save) button on screen before any scrolling."""
    where = f"the {name} modal at {at(size)}"
    expect(pay, where).to_be_enabled()  # the summary shown is the one for the choices made
    assert_fits_the_screen(page, where)
    box = modal.bounding_box()
    left, right = box["x"], size[0] - box["x"] - box["width"]
    if size in PHONES and not confirmation:
        assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, *size), f"{where} should fill the screen"
    else:
        assert abs(left - right) <= 1 and box["y"] > 0, f"{where} should open centred: {box}"
    if size in PHONES:
        expect(pay, f"{where}: the button should show without scrolling").to_be_in_viewport(ratio=1)
    snapshot(page, f"modal-{name.lower().replace(' ', '-')}", size, full_page=False)  # what is on screen
    if size != SMALL_PHONE:
        assert_no_serious_violations(page, where, context="dialog[open]")


def open_modal(page: Page, opener: Locator, name: str | re.Pattern) -> Locator:
    opener.click()
    modal = page.get_by_role("dialog", name=name)
    expect(modal).to_be_visible()
    return modal


def close_modal(page: Page, modal: Locator) -> None:
    page.keyboard.press("Escape")
    expect(modal).to_have_count(0)


def visit(page: Page, path: str) -> None:
    page.goto(path)
    loaded(page, path)


def table_roles(page: Page) -> Counter:
    """What Chromium tells a screen reader about the page's tables: the roles in its accessibility tree
    (Playwright's own role queries read the HTML, and would not see CSS take the table semantics away)."""
    session = page.context.new_cdp_session(page)
    try:
        nodes = session.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        session.detach()
    return Counter(role for node in nodes if not node.get("ignored")
                   and (role := node.get("role", {}).get("value")) in {"table", "row", "columnheader", "cell"})


def contrast(page: Page, selector: str, *, focused: bool = False) -> list[tuple[str, float]]:
    """Each visible control's edge (its border, or its focus ring when `focused`) against what lies behind
    it, as WCAG's contrast ratio, with the control's name."""
    return page.evaluate("""([selector, focused]) => {
        const rgb = c => c.match(/[\\d.]+/g).map(Number);
        const lum = ([r, g, b]) => [r, g, b].map(v => v / 255)
            .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
            .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
        const behind = el => {
            for (; el; el = el.parentElement) {
                const c = rgb(getComputedStyle(el).backgroundColor);
                if (c.length < 4 || c[3] > 0) return c;
            }
            return [255, 255, 255];
        };
        return [...document.querySelectorAll(selector)].filter(el => el.checkVisibility()).map(el => {
            if (focused) el.focus();
            const style = getComputedStyle(el);
            const edge = lum(rgb(focused ? style.outlineColor : style.borderTopColor));
            const back = lum(behind(el.parentElement));
            const ratio = (Math.max(edge, back) + 0.05) / (Math.min(edge, back) + 0.05);
            return [el.labels?.[0]?.textContent.trim() || el.name || el.id, Math.round(ratio * 100) / 100];
        });
    }""", [selector, focused])


def check_controls_stand_out(page: Page) -> None:
    """What axe does not measure (WCAG 1.4.11, non-text contrast): a field's edge and the focus ring at 3:1
    at least against what lies behind them, and the tier radio's ring drawn round it, not stretched."""
    for path in ("/billing/payment/", "/billing/tokens/", "/billing/api-keys/"):
        visit(page, path)
        fields = "input:not([type=hidden], [type=checkbox], [type=radio]), select"
        assert all(ratio >= 3 for _, ratio in contrast(page, fields)), (path, contrast(page, fields))
        assert all(ratio >= 3 for _, ratio in contrast(page, fields, focused=True)), path

    page.get_by_role("link", name="Licenses", exact=True).click()
    loaded(page, "/billing/licenses/")
    modal = open_modal(page, page.get_by_role("link", name="Add License", exact=True), "Add License")
    tier = modal.get_by_role("radio", name=re.compile("^Premium"))
    tab_to(page, modal.get_by_role("radio", name=re.compile("^Pro")))
    page.keyboard.press("ArrowDown")  # to Premium, as a keyboard user moves between radios
    expect(tier).to_be_focused()
    ring = tier.evaluate("el => [el.matches(':focus-visible'), getComputedStyle(el).outlineStyle]")
    box = tier.bounding_box()
    assert ring == [True, "solid"] and abs(box["width"] - box["height"]) <= 1, (ring, box)
    close_modal(page, modal)


# --- the owner ------------------------------------------------------------------------------------

def test_every_billing_page_and_modal_fits_a_phone_and_passes_axe(page: Page, busy_owner):
    owner, renewal = busy_owner
    log_in(page, owner.email)
    resize(page, DESKTOP)
    check_controls_stand_out(page)
    pages = [("licenses", "/billing/licenses/"), ("payment", "/billing/payment/"), ("invoices", "/billing/invoices/"),
             ("token-activity", "/billing/tokens/"), ("api-keys", "/billing/api-keys/"),
             ("pay-now", f"/billing/renewals/{renewal.pk}/pay/"), ("features", "/billing/licenses/features/"),
             ("add-license-page", "/billing/licenses/add/")]  # the modal's page, without JavaScript
    for size in SCREENS:
        resize(page, size)
        for name, path in pages:
            visit(page, path)
            check_page(page, name, size)

        visit(page, "/billing/licenses/")
        # The licenses are cards on a phone, and still a table of 7 rows under 8 headings for a screen reader.
        assert table_roles(page) == {"table": 1, "row": 1 + 7, "columnheader": 8, "cell": 7 * 8}, at(size)
        log_out = page.get_by_role("button", name="Log out").bounding_box()
        assert log_out["height"] < 30, f"“Log out” wraps onto two lines at {at(size)}"

        modal = open_modal(page, page.get_by_role("link", name="Add License", exact=True), "Add License")
        check_modal(page, modal, "Add License", size, modal.get_by_role("button", name=PAY))
        close_modal(page, modal)

        newest = page.get_by_role("link", name=re.compile(r"^Change plan of license")).first  # the Basic annual
        modal = open_modal(page, newest, "Change plan")
        modal.get_by_role("radio", name="Premium").check()
        check_modal(page, modal, "Change plan", size, modal.get_by_role("button", name=PAY))
        close_modal(page, modal)

        cancel = page.get_by_role("link", name=re.compile(r"^Cancel license #")).first
        modal = open_modal(page, cancel, re.compile(r"^Cancel license #\d+\?$"))
        confirm = modal.get_by_role("button", name=re.compile(r"^Cancel license"))
        check_modal(page, modal, "Cancel license", size, confirm, confirmation=True)
        close_modal(page, modal)

        modal = open_modal(page, page.get_by_role("link", name="Top Up", exact=True), "Top Up tokens")
        modal.get_by_role("radio", name=re.compile("^Standard")).check()
        check_modal(page, modal, "Top Up", size, modal.get_by_role("button", name=PAY))
        close_modal(page, modal)

        visit(page, "/billing/payment/")
        modal = open_modal(page, page.get_by_role("link", name="Add card", exact=True), "Add card")
        check_modal(page, modal, "Add card", size, modal.get_by_role("button", name="Save card"))
        close_modal(page, modal)
        modal = open_modal(page, page.get_by_role("link", name="Remove Visa ending 4242"), "Remove Visa ending 4242?")
        check_modal(page, modal, "Remove card", size, modal.get_by_role("button", name="Remove Visa ending 4242"),
                    confirmation=True)
        close_modal(page, modal)

        visit(page, "/billing/tokens/")
        modal = open_modal(page, page.get_by_role("link", name="Estimate an event"), "Estimate an event")
        modal.get_by_label("Expected guests").fill("400")  # more than the balance: a top-up to pay for
        check_modal(page, modal, "Estimate", size, modal.get_by_role("button", name=PAY))
        close_modal(page, modal)

        visit(page, "/billing/api-keys/")
        modal = open_modal(page, page.get_by_role("link", name=re.compile("^Revoke API key Booth 7")), "Revoke API key")
        check_modal(page, modal, "Revoke key", size, modal.get_by_role("button", name="Revoke key"), confirmation=True)
        close_modal(page, modal)
        if size == PHONE:  # a new key, shown once in a field to copy from, fits a phone too
            page.get_by_label("Key name").fill("Booth 9")
            page.get_by_role("button", name="Create API key").click()
            expect(page.get_by_label(re.compile("Your new API key"))).to_have_value(re.compile(r"^pbk_"))
            check_page(page, "api-keys-new-key", size)


def test_log_in_sign_up_and_password_reset_fit_a_phone_and_pass_axe(page: Page, transactional_db):
    for size in SCREENS:
        resize(page, size)
        for name, path in [("login", "/login/"), ("signup", "/signup/"), ("password-reset", "/password-reset/")]:
            page.goto(path)
            check_page(page, name, size)
        page.goto("/signup/")
        page.get_by_role("button", name="Sign up").click()  # nothing filled in: every field in error
        expect(page.get_by_role("alert")).to_be_visible()
        check_page(page, "signup-errors", size)


# --- finance staff --------------------------------------------------------------------------------

def test_every_finance_page_fits_a_phone_and_passes_axe(page: Page, transactional_db):
    # The Finance group comes with a migration, and an earlier browser test's flush took it away.
    Group.objects.get_or_create(name=FINANCE_GROUP)
    call_command("finance_demo")  # 40 demo accounts, a few hundred invoices, and the finance login
    finance = User.objects.get(email=FINANCE_EMAIL)
    # An open invoice (with its declined attempts), and a zip of PDFs asked for and being rendered.
    number = Invoice.objects.filter(status=Invoice.OPEN).order_by("pk").values_list("number", flat=True).first()
    job = ZipJob.objects.create(user=finance, filters={"status": "paid", "q": "Snapshot Studios"}, total=120, done=45)
    page.goto("/login/?next=/finance/invoices/")  # finance staff have no Billing area
    page.get_by_label("Email").fill(FINANCE_EMAIL)
    page.get_by_label("Password").fill(FINANCE_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    loaded(page, "/finance/invoices/")
    pages = [("finance-invoices", "/finance/invoices/"), ("finance-invoice", f"/finance/invoices/{number}/"),
             ("finance-receivables", "/finance/receivables/"), ("finance-revenue", "/finance/revenue/"),
             ("finance-zip", f"/finance/exports/zips/{job.pk}/")]
    for size in SCREENS:
        resize(page, size)
        for name, path in pages:
            visit(page, path)
            check_page(page, name, size)
        if size in PHONES:
            # The column headings still sort on a phone, as a row of links above the cards.
            visit(page, "/finance/invoices/")
            expect(page.get_by_role("columnheader", name="Amount").get_by_role("link")).to_be_visible()
