"""Auto top-up and the low-balance alert, driven by usage through tokens_spend (as the device API spends)."""

import datetime
from decimal import Decimal

import pytest
from django.core import mail

from billing.top_up import tokens_top_up
from billing.usage import usage_record
from invoices.models import Invoice
from tests.conftest import DECLINES_CHARGES, add_card, logged_in
from tests.helpers import charges, clock_at, text
from tests.tokens.conftest import spend
from tokens.models import TokenEntry, TokenPackage, TokenSettings, TopUp
from tokens.services import InsufficientTokens, token_balance, tokens_adjust, tokens_grant_signup

D = Decimal
LOW = "Your Pictor token balance is low"
SWITCHED_OFF = "Auto top-up switched off"
# A fixed moment, years from the wall clock: the monthly limit must follow the time usage is charged at.
NOW = datetime.datetime(2030, 1, 15, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def starter(packages):
    return packages[0]  # 100 tokens, $10.00


@pytest.fixture
def account(alice, starter):
    """Alice: 50 tokens; auto top-up buys Starter when usage takes the balance below 30, twice a month at most."""
    tokens_grant_signup(account=alice.account)
    TokenSettings.objects.create(account=alice.account, auto_top_up=True, auto_top_up_threshold=30,
                                 auto_top_up_package=starter, auto_top_up_monthly_limit=2)
    return alice.account


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run one call as its committed transaction would: the email it leaves for on_commit goes out."""
    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)
    return run


def emails() -> list[str]:
    """The subjects of the email sent so far."""
    return [message.subject for message in mail.outbox]


def auto_top_ups(account):
    return TopUp.objects.filter(account=account, automatic=True)


class TestAutoTopUp:
    def test_a_debit_that_crosses_the_threshold_buys_the_package_once(self, account, alice_card, committed):
        assert spend(account, "ai_image", 10, now=NOW).body["balance"] == 40  # still above 30: nothing bought
        assert not auto_top_ups(account).exists()

        answer = spend(account, "ai_image", 15, now=NOW)  # 40 -> 25: crosses 30, queues one top-up

        # The debit answers at once with its own balance; the top-up it queued is bought once it commits.
        assert answer.body["balance"] == 25
        assert token_balance(account) == 125
        top_up = auto_top_ups(account).get()
        assert (top_up.tokens, top_up.package) == (100, account.token_settings.auto_top_up_package)
        assert top_up.invoice.description == "Auto top-up: Starter, 100 tokens"
        assert (top_up.invoice.kind, top_up.invoice.total, top_up.invoice.issued_on) == (
            Invoice.TOP_UP, D("10.00"), NOW.date())
        assert charges().get().amount == D("10.00")
        entry = TokenEntry.objects.get(kind=TokenEntry.AUTO_TOP_UP)
        assert (entry.amount, entry.invoice, entry.balance_after) == (100, top_up.invoice, 125)
        # The ledger: grant 50, usage -10, usage -15, auto top-up +100 = 125.
        assert TokenEntry.objects.filter(account=account).balance() == 125
        assert emails() == []  # the balance never stayed low

    def test_a_debit_while_already_below_the_threshold_buys_once_auto_top_up_is_on(self, account, alice_card):
        TokenSettings.objects.filter(account=account).update(auto_top_up=False)
        spend(account, "ai_image", 25, now=NOW)  # 25, below 30, while auto top-up was off
        assert not auto_top_ups(account).exists()
        TokenSettings.objects.filter(account=account).update(auto_top_up=True)
        spend(account, "ai_image", 5, now=NOW)  # 20, still below: now it buys
        assert auto_top_ups(account).count() == 1
        assert token_balance(account) == 120

    def test_it_buys_again_while_below_up_to_the_monthly_limit(self, account, alice_card):
        spend(account, "ai_image", 25, now=NOW)  # 25 -> +100 = 125
        spend(account, "ai_image", 100, now=NOW)  # 25 -> +100 = 125 (2 of 2 this month)
        spend(account, "ai_image", 100, now=NOW)  # 25: the limit is reached, nothing bought
        assert auto_top_ups(account).count() == 2
        assert token_balance(account) == 25
        assert charges().count() == 2

        next_month = datetime.datetime(2030, 2, 1, 0, 0, tzinfo=datetime.UTC)
        spend(account, "ai_image", 5, now=next_month)  # 20, below: a new month allows it again
        assert auto_top_ups(account).count() == 3
        assert token_balance(account) == 120

    def test_a_debit_larger_than_the_balance_buys_first_and_then_goes_through(self, account, alice_card):
        answer = spend(account, "ai_video", 6, now=NOW)  # needs 60 of 50: buy 100 first
        assert answer.body["balance"] == 90
        assert auto_top_ups(account).count() == 1

    def test_a_debit_larger_than_balance_and_package_together_is_402_but_keeps_the_top_up(self, account,
                                                                                           alice_card):
        with pytest.raises(InsufficientTokens):  # needs 200; 50 + 100 is not enough
            with clock_at(account, NOW):
                usage_record(account=account, output_type="ai_video", quantity=20, event_id="gala",
                             idempotency_key="too-big")
        assert auto_top_ups(account).count() == 1
        assert token_balance(account) == 150
        assert not TokenEntry.objects.filter(kind=TokenEntry.USAGE).exists()

    def test_a_package_taken_off_sale_switches_auto_top_up_off_and_charges_nothing(self, account, alice_card):
        TokenSettings.objects.get(account=account).auto_top_up_package.__class__.objects.filter(
            pk=account.token_settings.auto_top_up_package_id).update(is_active=False)
        spend(account, "ai_image", 25, now=NOW)
        assert not auto_top_ups(account).exists()
        assert charges().count() == 0
        assert "can no longer be bought" in TokenSettings.objects.get(account=account).auto_top_up_failure

    def test_a_limit_of_one_allows_one_top_up_a_month(self, account, alice_card):
        TokenSettings.objects.filter(account=account).update(auto_top_up_monthly_limit=1)
        spend(account, "ai_image", 25, now=NOW)
        spend(account, "ai_image", 100, now=NOW + datetime.timedelta(days=16))  # Jan 31, still January
        assert auto_top_ups(account).count() == 1

    def test_a_declined_card_switches_it_off_keeps_the_usage_and_emails_once(self, account, alice, committed):
        add_card(account, DECLINES_CHARGES)

        answer = spend(account, "ai_image", 25, now=NOW)

        assert answer.body["balance"] == 25  # the usage stands
        assert not TopUp.objects.exists() and not charges().exists() and not Invoice.objects.exists()
        prefs = TokenSettings.objects.get(account=account)
        assert (prefs.auto_top_up, prefs.auto_top_up_failure) == (False, "Your card was declined.")
        assert emails() == [SWITCHED_OFF]
        message = mail.outbox[0]
        assert message.to == [alice.email]
        assert "Your card was declined." in message.body and "Auto top-up is now off." in message.body
        body = text(logged_in(alice).get("/billing/invoices/"))
        assert 'data-banner="auto-top-up-off">Auto top-up is off: Your card was declined.' in body

        spend(account, "ai_image", 20, now=NOW)  # 5: off now, so no second attempt
        assert emails() == [SWITCHED_OFF, LOW]
        assert not charges().exists()

    def test_without_a_card_it_switches_off_too(self, account, committed):
        spend(account, "ai_image", 25, now=NOW)
        prefs = TokenSettings.objects.get(account=account)
        assert (prefs.auto_top_up, prefs.auto_top_up_failure) == (False, "No default card.")
        assert emails() == [SWITCHED_OFF]

    def test_a_package_that_can_no_longer_be_bought_switches_it_off_instead_of_failing_the_usage(
            self, account, alice_card, starter, committed):
        TokenPackage.objects.filter(pk=starter.pk).update(price=0)
        spend(account, "ai_image", 25, now=NOW)
        assert token_balance(account) == 25
        prefs = TokenSettings.objects.get(account=account)
        assert (prefs.auto_top_up, prefs.auto_top_up_failure) == (
            False, "The Starter package can no longer be bought.")
        assert emails() == [SWITCHED_OFF]
        assert not charges().exists()

    def test_free_usage_never_triggers_it(self, account, alice_card):
        spend(account, "photo", 10_000, now=NOW)
        assert not auto_top_ups(account).exists()


class TestLowBalanceEmail:
    @pytest.fixture
    def account(self, alice):
        tokens_grant_signup(account=alice.account)  # 50; alert below the default 20
        return alice.account

    def test_one_email_per_crossing(self, account, alice, alice_card, packages, committed):
        spend(account, "ai_image", 25)  # 25
        assert emails() == []
        spend(account, "ai_image", 10)  # 15: below 20
        assert emails() == [LOW]
        assert "Alice Events has 15 tokens left (your alert is set at 20)." in mail.outbox[0].body
        spend(account, "ai_image", 5)  # 10: still the same dip
        spend(account, "ai_image", 10)  # 0
        assert emails() == [LOW]

        committed(tokens_top_up, account=account, package=packages[0], token="back-up")  # 100: the dip is over
        assert emails() == [LOW]
        spend(account, "ai_image", 81)  # 19: a new crossing
        assert emails() == [LOW, LOW]
        assert mail.outbox[1].to == [alice.email]

    def test_an_admin_deduction_and_grant_count_as_crossings_too(self, account, committed):
        committed(tokens_adjust, account=account, amount=-35, reason="Correction", user=None)  # 15
        assert emails() == [LOW]
        committed(tokens_adjust, account=account, amount=100, reason="Goodwill", user=None)  # 115: over
        spend(account, "ai_image", 100)  # 15: a new crossing
        assert emails() == [LOW, LOW]

    def test_no_email_when_an_auto_top_up_lifts_the_balance_in_the_same_debit(self, account, alice_card, packages,
                                                                            committed):
        TokenSettings.objects.create(account=account, auto_top_up=True, auto_top_up_threshold=30,
                                     auto_top_up_package=packages[0])
        spend(account, "ai_image", 40)  # 10, then +100 = 110
        assert token_balance(account) == 110
        assert emails() == []

    def test_one_email_when_the_auto_top_up_still_leaves_the_balance_low(self, account, alice_card, packages,
                                                                       committed):
        # Alert below 500; auto top-up buys 100 below 30: the top-up and the debit both look at the
        # balance, and the account must hear about this dip once.
        TokenSettings.objects.create(account=account, low_balance_threshold=500, auto_top_up=True,
                                     auto_top_up_threshold=30, auto_top_up_package=packages[0])
        spend(account, "ai_image", 25)  # 25 -> +100 = 125, below 500
        assert token_balance(account) == 125
        assert emails() == [LOW]

    def test_nothing_is_sent_when_the_debit_is_refused(self, account, committed):
        with pytest.raises(InsufficientTokens):
            committed(usage_record, account=account, output_type="ai_video", quantity=6, event_id="x",
                      idempotency_key="too-much")
        assert token_balance(account) == 50
        assert emails() == []
