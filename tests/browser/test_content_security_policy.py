"""Every Billing page and modal in Chromium under the Content-Security-Policy: no violation reported (no
inline script or style, nothing from another origin), and every answer `Cache-Control: private, no-store`."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_billing_flow import VISA, loaded, log_in, open_tab, owner_with_card
from tests.browser.test_renewals_flow import past_due  # noqa: F401  (a fixture: a renewal waiting for Pay now)
from tests.helpers import buy_directly

pytestmark = pytest.mark.browser


@pytest.fixture
def watched(page: Page, live_server):
    """The page, with every CSP violation it reports (its `securitypolicyviolation` events and Chromium's
    console errors) and every answer from our server that is not `private, no-store`, collected."""
    problems = {"violations": [], "cacheable": []}
    page.expose_function("reportViolation", lambda violation: problems["violations"].append(violation))
    page.add_init_script("""window.cspViolations = [];
        document.addEventListener("securitypolicyviolation", (event) => {
            const violation = `${event.violatedDirective}: ${event.blockedURI || "inline"} on ${event.documentURI}`;
            window.cspViolations.push(violation);
            window.reportViolation(violation);
        });""")
    page.on("console", lambda message: message.type == "error" and "Content Security Policy" in message.text
            and problems["violations"].append(message.text))

    def answered(response):
        path = response.url.removeprefix(live_server.url)
        cache_control = {part.strip() for part in response.headers.get("cache-control", "").split(",")}
        if path.startswith("/billing/") and response.status == 200 and not {"private", "no-store"} <= cache_control:
            problems["cacheable"].append(f"{path}: {response.headers.get('cache-control')}")

    page.on("response", answered)
    return page, problems


def dialog(page: Page, name: str):
    modal = page.get_by_role("dialog", name=name)
    expect(modal).to_be_visible()
    expect(modal.get_by_role("button").first).to_be_visible()
    return modal


def test_every_billing_page_runs_under_the_policy_without_a_violation(watched, catalogue, past_due):  # noqa: F811
    page, problems = watched
    owner = owner_with_card(VISA, email="alice@booths.example")
    buy_directly(owner.account, owner, quantity=2)
    log_in(page, owner.email)
    policy = page.request.get("/billing/licenses/").headers["content-security-policy"]
    assert "script-src 'self' https://js.stripe.com" in policy
    assert "unsafe-inline" not in policy

    page.get_by_role("link", name="Add License", exact=True).click()
    dialog(page, "Add License").get_by_label("Quantity").fill("3")  # the Order Summary refreshes (HTMX)
    expect(page.locator('[data-summary="total_due"]')).not_to_have_text("$99.00")
    page.keyboard.press("Escape")

    page.get_by_role("link", name="Change plan", exact=False).first.click()
    dialog(page, "Change plan").get_by_role("radio", name="Premium").check()
    page.keyboard.press("Escape")

    page.get_by_role("link", name="Device API keys").click()
    loaded(page, "/billing/api-keys/")
    expect(page.get_by_role("heading", name="Device API keys")).to_be_visible()

    open_tab(page, "Payment", "/billing/payment/")
    page.get_by_role("link", name="Add card", exact=True).click()
    dialog(page, "Add card")
    page.keyboard.press("Escape")

    open_tab(page, "Invoices", "/billing/invoices/")
    expect(page.get_by_role("heading", name="Invoices")).to_be_visible()
    pdf = page.request.get(page.get_by_role("link", name="PDF").first.get_attribute("href"))
    assert pdf.headers["cache-control"] == "private, no-store"

    page.get_by_role("link", name="Top Up").click()
    dialog(page, "Top Up tokens").get_by_role("radio", name="Standard").check()
    page.keyboard.press("Escape")

    page.locator("[data-token-balance]").click()
    loaded(page, "/billing/tokens/")
    expect(page.get_by_role("heading", name="Token activity", level=2)).to_be_visible()
    page.get_by_role("link", name="Estimate an event").click()
    dialog(page, "Estimate an event")
    page.keyboard.press("Escape")

    # Pay now, for the owner whose renewal was refused.
    page.get_by_role("button", name="Log out").click()
    log_in(page, past_due[0].email)
    page.get_by_role("link", name="Pay now").click()
    loaded(page, f"/billing/renewals/{past_due[1].pk}/pay/")
    expect(page.get_by_role("heading", name="Pay your renewal")).to_be_visible()

    assert page.evaluate("window.cspViolations") == []
    assert problems["violations"] == []
    assert problems["cacheable"] == []


def test_a_blocked_inline_script_is_reported_so_the_test_above_would_see_one(watched, catalogue):
    page, problems = watched
    log_in(page, owner_with_card(VISA, email="alice@booths.example").email)
    page.evaluate("""() => { const script = document.createElement("script");
                             script.textContent = "window.ran = true"; document.body.append(script); }""")
    page.wait_for_function("() => window.cspViolations.length > 0")
    assert page.evaluate("window.ran") is None
    assert any("script-src" in violation for violation in problems["violations"]), problems
