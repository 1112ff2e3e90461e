"""Token counts read the same everywhere: "2,100 tokens" with a separator, free usage as 0 (never "−0")."""

import re

from tests.conftest import logged_in
from tests.helpers import TOP_UP_URL, text
from tests.tokens.conftest import spend
from tokens.services import tokens_adjust, tokens_grant_signup

MINUS = "\u2212"


def ledger_tokens(body: str) -> list[str]:
    """The Tokens column of the ledger, top to bottom, as the page writes it."""
    return [shown.strip() for shown in re.findall(r'data-amount="-?\d+">([^<]*)</td>', body)]


def test_a_balance_over_a_thousand_has_a_separator_in_the_header_and_the_ledger(alice, admin_user):
    tokens_grant_signup(account=alice.account)
    tokens_adjust(account=alice.account, amount=2050, reason="Trade show bundle", user=admin_user)
    body = text(logged_in(alice).get("/billing/tokens/"))
    assert "<strong>2,100</strong> tokens" in body
    assert ledger_tokens(body) == ["+2,050", "+50"]
    assert re.search(r'data-balance-after="2100">2,100</td>', body)


def test_free_usage_shows_0_tokens_not_minus_0(alice):
    tokens_grant_signup(account=alice.account)
    spend(alice.account, "photo", 5)  # photos cost 0 tokens
    spend(alice.account, "ai_image", 3)
    body = text(logged_in(alice).get("/billing/tokens/"))
    assert ledger_tokens(body) == [f"{MINUS}3", "0", "+50"]
    assert f"{MINUS}0" not in body


def test_the_top_up_packages_count_their_tokens_with_separators(alice, alice_card, packages):
    body = text(logged_in(alice).get(TOP_UP_URL))
    assert "<span>1,000 tokens</span>" in body
    assert "<span>5,000 tokens</span>" in body
