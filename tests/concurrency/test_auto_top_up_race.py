"""Concurrent usage debits across the auto top-up threshold, on PostgreSQL: one top-up, never several.

Like test_races.py: real threads on their own connections released together by a Barrier, the
sandbox gateway, no mocks and no sleeps. Run with, e.g.:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pictor_race_check .venv/bin/python -m pytest tests/concurrency
"""

import datetime
import uuid

import pytest
from django.core import mail
from django.db import connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

if connection.vendor != "postgresql":
    pytest.skip(
        f"race tests need PostgreSQL row locks; the default database is {connection.vendor} "
        "(set DATABASE_URL=postgres://... to run them)",
        allow_module_level=True,
    )

from billing.usage import tokens_spend  # noqa: E402
from payments.models import Charge  # noqa: E402  (after the skip: keeps the reason first)
from tests.concurrency.test_races import race  # noqa: E402
from tests.conftest import DECLINED, add_card  # noqa: E402
from tests.factories import UserFactory  # noqa: E402
from tests.helpers import clock_set  # noqa: E402
from tokens.models import TokenEntry, TokenSettings, TopUp  # noqa: E402
from tokens.services import token_balance, tokens_adjust, tokens_grant_signup  # noqa: E402

NOW = datetime.datetime(2026, 3, 10, 12, 0, tzinfo=datetime.UTC)
DEBITS = 12


def account_at_100_tokens(packages, card=None):
    """An account with 100 tokens whose auto top-up buys Starter (100 tokens, $10) below 50, up to 5 times a month."""
    user = UserFactory()
    account = user.account
    if card:
        add_card(account, card)
    else:
        add_card(account)
    tokens_grant_signup(account=account)
    tokens_adjust(account=account, amount=50, reason="Race set-up", user=None)
    TokenSettings.objects.update_or_create(account=account, defaults={
        "auto_top_up": True, "auto_top_up_threshold": 50, "auto_top_up_package": packages[0],
        "auto_top_up_monthly_limit": 5})
    clock_set(account, NOW)
    return account


def debit(account, tokens):
    """A zero-argument callable: one AI-image usage request of `tokens` images, for `race`."""
    key = uuid.uuid4().hex
    return lambda: tokens_spend(account=account, output_type="ai_image", quantity=tokens, event_id="gala",
                                idempotency_key=key)


def assert_running_balances_hold(account):
    """Every entry's balance_after is the sum of the entries up to it, and never negative."""
    running = 0
    for amount, balance_after in TokenEntry.objects.filter(account=account).order_by("id").values_list(
            "amount", "balance_after"):
        running += amount
        assert balance_after == running >= 0
    assert token_balance(account) == running == TokenEntry.objects.filter(account=account).balance()


@pytest.mark.parametrize(("tokens_each", "answered"), [
    # 100 - 12 x 5 = 40: whatever the order, exactly one debit takes the balance from 50 to 45 and
    # buys 100 tokens (145); the last one leaves 140.
    (5, [95, 90, 85, 80, 75, 70, 65, 60, 55, 50, 145, 140]),
    # 100 - 12 x 10 would be -20 without the top-up: the debit from 50 to 40 buys 100 once (140);
    # the others go on from there and never cross again (down to 80).
    (10, [90, 80, 70, 60, 50, 140, 130, 120, 110, 100, 90, 80]),
], ids=["5 tokens each", "10 tokens each"])
def test_concurrent_debits_across_the_threshold_buy_one_auto_top_up(packages, tokens_each, answered):
    account = account_at_100_tokens(packages)

    answers = race(*(debit(account, tokens_each) for _ in range(DEBITS)))

    assert not any(answer.replayed for answer in answers)
    assert Charge.objects.filter(account=account).count() == 1
    assert Charge.objects.get(account=account).amount == packages[0].price
    assert TopUp.objects.filter(account=account, automatic=True).count() == 1
    assert TokenEntry.objects.filter(account=account, kind=TokenEntry.AUTO_TOP_UP).count() == 1
    assert TokenEntry.objects.filter(account=account, kind=TokenEntry.USAGE).count() == DEBITS
    assert token_balance(account) == answered[-1]
    assert_running_balances_hold(account)
    # Each request answered the balance right after its own debit (and the top-up it made, if any).
    assert sorted(answer.body["balance"] for answer in answers) == sorted(answered)


def test_concurrent_debits_with_a_declined_card_switch_auto_top_up_off_once(packages):
    account = account_at_100_tokens(packages, card=DECLINED)
    mail.outbox.clear()

    answers = race(*(debit(account, 5) for _ in range(DEBITS)))

    assert not any(answer.replayed for answer in answers)
    assert not Charge.objects.filter(account=account).exists()
    assert not TopUp.objects.filter(account=account).exists()
    prefs = TokenSettings.objects.get(account=account)
    assert (prefs.auto_top_up, prefs.auto_top_up_failure) == (False, "Your card was declined.")
    assert [message.subject for message in mail.outbox] == ["Auto top-up switched off"]
    assert token_balance(account) == 40
    assert_running_balances_hold(account)
