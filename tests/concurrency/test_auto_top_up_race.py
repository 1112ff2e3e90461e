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

from billing.usage import usage_record  # noqa: E402
from tests.concurrency.test_races import race  # noqa: E402
from tests.conftest import DECLINES_CHARGES, add_card  # noqa: E402
from tests.factories import UserFactory  # noqa: E402
from tests.helpers import charges, clock_set  # noqa: E402
from tokens.models import TokenEntry, TokenSettings, TopUp  # noqa: E402
from tokens.services import InsufficientTokens, token_balance, tokens_adjust, tokens_grant_signup  # noqa: E402

NOW = datetime.datetime(2026, 3, 10, 12, 0, tzinfo=datetime.UTC)
DEBITS = 12


@pytest.fixture(params=["test clock", "real time"])
def on_test_clock(request) -> bool:
    """Both ways a debit runs on PostgreSQL: an account on a test clock reads its row under the lock
    first, in a transaction; any other account's debit is one statement and its own transaction."""
    return request.param == "test clock"


def account_at_100_tokens(packages, on_test_clock, card=None):
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
    if on_test_clock:
        clock_set(account, NOW)
    return account


def debit(account, tokens):
    """A zero-argument callable: one AI-image usage request of `tokens` images, for `race`."""
    key = uuid.uuid4().hex
    return lambda: usage_record(account=account, output_type="ai_image", quantity=tokens, event_id="gala",
                                idempotency_key=key)


def assert_running_balances_hold(account):
    """Every entry's balance_after is the sum of the entries up to it, and never negative."""
    running = 0
    for amount, balance_after in TokenEntry.objects.filter(account=account).order_by("id").values_list(
            "amount", "balance_after"):
        running += amount
        assert balance_after == running >= 0
    assert token_balance(account) == running == TokenEntry.objects.filter(account=account).balance()


def test_concurrent_debits_across_the_threshold_queue_one_auto_top_up(packages, on_test_clock):
    # 100 - 12 x 5 = 40, never below zero: every debit goes through. Exactly one debit takes the
    # balance from 50 to 45 and queues Starter (100 tokens, $10); the debits racing it see the mark
    # and queue nothing; once it lands the balance never crosses again: 100 + 100 - 60 = 140.
    account = account_at_100_tokens(packages, on_test_clock)

    answers = race(*(debit(account, 5) for _ in range(DEBITS)))

    assert not any(answer.replayed for answer in answers)
    assert sum(answer.top_up_queued for answer in answers) == 1
    assert charges().filter(account=account).count() == 1
    assert charges().get(account=account).amount == packages[0].price
    assert TopUp.objects.filter(account=account, automatic=True).count() == 1
    assert TokenEntry.objects.filter(account=account, kind=TokenEntry.AUTO_TOP_UP).count() == 1
    assert TokenEntry.objects.filter(account=account, kind=TokenEntry.USAGE).count() == DEBITS
    assert token_balance(account) == 140
    assert_running_balances_hold(account)
    assert TokenSettings.objects.get(account=account).auto_top_up_pending_since is None


def test_debits_beyond_the_balance_never_buy_a_second_top_up_while_one_is_under_way(packages, on_test_clock):
    # 100 - 12 x 10 = -20 without a top-up. The debit from 50 to 40 queues one; debits that find
    # the balance short try to buy first, but one top-up is already under way, so they are refused
    # (402, nothing debited) rather than buy a second. Whatever the timing: one charge, no overdraft.
    account = account_at_100_tokens(packages, on_test_clock)

    answers = race(*(debit(account, 10) for _ in range(DEBITS)), outcomes=(InsufficientTokens,))

    debited = [answer for answer in answers if not isinstance(answer, InsufficientTokens)]
    refused = [answer for answer in answers if isinstance(answer, InsufficientTokens)]
    assert len(debited) + len(refused) == DEBITS
    assert charges().filter(account=account).count() == 1
    assert TopUp.objects.filter(account=account, automatic=True).count() == 1
    assert TokenEntry.objects.filter(account=account, kind=TokenEntry.USAGE).count() == len(debited)
    assert token_balance(account) == 100 + 100 - 10 * len(debited)
    assert_running_balances_hold(account)


def test_concurrent_debits_with_a_declined_card_switch_auto_top_up_off_once(packages, on_test_clock):
    account = account_at_100_tokens(packages, on_test_clock, card=DECLINES_CHARGES)
    mail.outbox.clear()

    answers = race(*(debit(account, 5) for _ in range(DEBITS)))

    assert not any(answer.replayed for answer in answers)
    assert not charges().filter(account=account).exists()
    assert not TopUp.objects.filter(account=account).exists()
    prefs = TokenSettings.objects.get(account=account)
    assert (prefs.auto_top_up, prefs.auto_top_up_failure) == (False, "Your card was declined.")
    assert [message.subject for message in mail.outbox] == ["Auto top-up switched off"]
    assert token_balance(account) == 40
    assert_running_balances_hold(account)


def test_concurrent_debits_across_the_low_balance_alert_email_once(packages, on_test_clock):
    # Auto top-up off, the alert at 50: 100 - 12 x 5 = 40. Exactly one debit takes the balance
    # from 50 to 45; whichever order the debits commit in, one email, and the dip stays flagged.
    account = account_at_100_tokens(packages, on_test_clock)
    TokenSettings.objects.filter(account=account).update(auto_top_up=False, low_balance_threshold=50)
    mail.outbox.clear()

    answers = race(*(debit(account, 5) for _ in range(DEBITS)))

    assert not any(answer.top_up_queued for answer in answers)
    assert [message.subject for message in mail.outbox] == ["Your Pictor token balance is low"]
    assert TokenSettings.objects.get(account=account).low_balance_alerted
    assert token_balance(account) == 40
    assert_running_balances_hold(account)
