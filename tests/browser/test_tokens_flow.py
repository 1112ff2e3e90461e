"""Tokens in a real browser: the estimator's live result and its one-click top-up, and the Token activity chart.

Same set-up as test_billing_flow.py: an empty database with the admin's catalogue, Debian's Chromium
against the live server, and a person's way of finding things (roles, labels, names).
"""

import re

import pytest
from playwright.sync_api import Page, expect

from billing.usage import usage_record
from tests.browser.test_billing_flow import VISA, loaded, log_in, no_page_load_since_marker, owner_with_card
from tokens.models import TopUp
from tokens.services import tokens_grant_signup

pytestmark = pytest.mark.browser

CHART_NAME = "Tokens used per day over the last 30 days"


def balance(page: Page):
    return page.locator("[data-token-balance]")


def estimate(dialog, name: str):
    return dialog.locator(f'[data-estimate="{name}"]')


def test_the_estimator_from_the_top_up_modal_updates_live_and_tops_up_the_suggested_mix(page: Page, catalogue):
    owner = owner_with_card(VISA)
    tokens_grant_signup(account=owner.account)
    log_in(page, owner.email)
    expect(balance(page)).to_have_text("50 tokens")

    page.evaluate("window.__marker = 1")
    page.get_by_role("link", name="Top Up").click()
    top_up = page.get_by_role("dialog", name="Top Up tokens")
    expect(top_up).to_be_visible()
    top_up.get_by_role("link", name="Estimate an event").click()
    estimator = page.get_by_role("dialog", name="Estimate an event")
    expect(estimator).to_be_visible()
    expect(top_up).to_have_count(0)
    expect(estimate(estimator, "tokens_needed")).to_have_text("100")  # 100 guests, 1 AI image each

    estimator.get_by_label("Expected guests").fill("200")
    estimator.get_by_label("AI image per guest").fill("2")
    estimator.get_by_label("AI video per guest").fill("1")
    # 200 × 2 × 1 + 200 × 1 × 10 = 2,400 tokens; 50 in hand, short by 2,350:
    # 4 Starter + 2 Large = 2,400 tokens for $200.00 is the cheapest mix.
    expect(estimate(estimator, "tokens_needed")).to_have_text("2,400")
    expect(estimate(estimator, "shortfall")).to_have_text("2,350")
    expect(estimator.locator('[data-summary="total_due"]')).to_have_text("$200.00")
    expect(estimator.get_by_role("rowheader", name="Starter: 100 tokens (4 × $10.00)")).to_be_visible()
    assert no_page_load_since_marker(page), "the estimate must update in place, not by reloading"

    estimator.get_by_label("Expected guests").fill("100000")
    expect(estimator.get_by_role("alert").filter(has_text="Guests must be from 1 to 10,000.")).to_be_visible()
    expect(estimator.get_by_role("button", name=re.compile("^Pay"))).to_have_count(0)
    estimator.get_by_label("Expected guests").fill("200")
    buy = estimator.get_by_role("button", name="Pay $200.00 with Visa ending 4242")
    expect(buy).to_be_visible()
    assert no_page_load_since_marker(page)

    buy.click()
    expect(estimator).to_have_count(0)
    loaded(page, "/billing/licenses/")  # back where Top Up was opened
    expect(balance(page)).to_have_text("2,450 tokens")
    expect(page.get_by_text(re.compile(r"2,400 tokens added\. \$200\.00 charged to Visa ending 4242\. Invoice PB-"))
           ).to_be_visible()
    top_up_row = TopUp.objects.get()
    assert (top_up_row.tokens, top_up_row.invoice.total) == (2400, 200)


def test_token_activity_opens_from_the_balance_and_shows_the_chart_and_the_estimator(page: Page, catalogue):
    owner = owner_with_card(VISA)
    account = owner.account
    tokens_grant_signup(account=account)
    for output_type, quantity in [("ai_image", 12), ("ai_video", 2), ("photo", 30)]:
        usage_record(account=account, output_type=output_type, quantity=quantity, event_id="spring-gala",
                     idempotency_key=f"{output_type}-{quantity}")
    log_in(page, owner.email)
    # 50 - 12 - 20 = 18 tokens: below the default alert at 20, so the balance is flagged.
    expect(balance(page)).to_have_text("18 tokens")
    link = page.get_by_role("link", name=re.compile(r"^18 tokens.*low balance, below your alert at 20 tokens"))
    expect(link.get_by_text("Low", exact=True)).to_be_visible()

    link.click()
    loaded(page, "/billing/tokens/")
    expect(page.get_by_role("heading", name="Token activity", level=2)).to_be_visible()
    chart = page.get_by_role("img", name=CHART_NAME)
    expect(chart).to_be_visible()
    expect(chart).to_have_accessible_description(re.compile(r"32 tokens in all: AI video 20, AI image 12\."))
    expect(chart.locator("rect[data-output-type]")).to_have_count(2)
    box = chart.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 100, box
    legend = page.get_by_role("list", name="Output types")
    expect(legend.get_by_role("listitem")).to_have_text(["AI video: 20 tokens", "AI image: 12 tokens"])
    ledger = page.get_by_role("table", name=re.compile("^Token ledger, newest first"))
    expect(ledger.get_by_role("row")).to_have_count(1 + 4)  # header, 3 usages and the signup grant

    ledger.get_by_role("link", name="Show only event spring-gala").first.click()
    loaded(page, "/billing/tokens/")
    expect(ledger.get_by_role("row")).to_have_count(1 + 3)

    page.evaluate("window.__marker = 1")
    page.get_by_role("link", name="Estimate an event").click()
    estimator = page.get_by_role("dialog", name="Estimate an event")
    expect(estimator).to_be_visible()
    estimator.get_by_label("Expected guests").fill("10")
    expect(estimate(estimator, "tokens_needed")).to_have_text("10")
    expect(estimator.get_by_text("Your balance covers this event.")).to_be_visible()
    assert no_page_load_since_marker(page)
    page.keyboard.press("Escape")
    expect(estimator).to_have_count(0)


def test_the_estimator_works_as_a_plain_page_without_javascript(no_js_context, catalogue):
    owner = owner_with_card(VISA)
    tokens_grant_signup(account=owner.account)
    page = no_js_context.new_page()
    page.goto("/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()
    page.goto("/billing/tokens/")
    page.get_by_role("link", name="Estimate an event").click()
    loaded(page, "/billing/tokens/estimate/")
    expect(page.get_by_role("dialog")).to_have_count(0)
    page.get_by_label("Expected guests").fill("30")
    page.get_by_label("AI image per guest").fill("0")
    page.get_by_label("AI video per guest").fill("1")
    page.get_by_role("button", name="Update estimate").click()
    expect(page.locator('[data-estimate="tokens_needed"]')).to_have_text("300")
    page.get_by_role("button", name="Pay $30.00 with Visa ending 4242").click()  # short by 250: 3 × Starter
    loaded(page, "/billing/tokens/")
    expect(balance(page)).to_have_text("350 tokens")
