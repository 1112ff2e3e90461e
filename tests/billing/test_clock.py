"""One clock: moving one account's clock moves every date rule for that account, and nothing for another."""

import datetime
import re
from decimal import Decimal

import pytest

from invoices.models import Invoice
from payments.models import Card
from payments.services import PaymentDeclined, chargeable_card
from pictor_billing import clock
from tests.helpers import buy_directly, clock_set, summary, text
from tokens.models import TokenEntry
from tokens.services import tokens_grant_signup, tokens_spend

D = Decimal
# Alice's clock stands on a day of its own, long after anyone's real today.
LATER = datetime.datetime(2031, 3, 10, 15, 30, tzinfo=datetime.UTC)


@pytest.fixture
def two_accounts(prices, alice, alice_card, charlie):
    from tests.conftest import add_card

    add_card(charlie.account)
    clock_set(alice.account, LATER)
    return alice.account, charlie.account


def test_the_clock_reads_the_account_and_nothing_else(two_accounts):
    alice, charlie = two_accounts
    assert clock.now(alice) == LATER
    assert clock.today(alice) == datetime.date(2031, 3, 10)
    assert clock.today(charlie) == clock.today() != clock.today(alice)
    assert clock.now(None).tzinfo is not None


def test_a_purchase_is_dated_quoted_and_invoiced_by_its_accounts_clock(two_accounts, alice, charlie):
    alice_account, charlie_account = two_accounts
    alice_purchase = buy_directly(alice_account, alice, period="annual")
    charlie_purchase = buy_directly(charlie_account, charlie, period="annual")

    assert alice_purchase.invoice.issued_on == datetime.date(2031, 3, 10)
    assert alice_purchase.invoice.number.startswith("PB-2031-")
    assert alice_purchase.licenses.get().period_end == datetime.date(2032, 3, 10)
    real_today = clock.today()
    assert charlie_purchase.invoice.issued_on == real_today
    assert charlie_purchase.invoice.number.startswith(f"PB-{real_today.year}-")
    assert charlie_purchase.licenses.get().purchased_on == real_today


def test_the_order_summary_renews_from_the_accounts_today(two_accounts, alice, charlie):
    from pictor_billing.pricing import add_years
    from tests.conftest import logged_in

    alice_page = text(summary(logged_in(alice), period="annual", tier="pro", quantity=1))
    charlie_page = text(summary(logged_in(charlie), period="annual", tier="pro", quantity=1))
    assert 'datetime="2032-03-10"' in alice_page
    assert f'datetime="{add_years(clock.today(), 1):%Y-%m-%d}"' in charlie_page


def test_what_falls_due_follows_the_accounts_today(two_accounts, alice, charlie):
    from billing.renewals import due_dates

    alice_account, charlie_account = two_accounts
    clock_set(alice_account, None)
    buy_directly(alice_account, alice, period="monthly")  # renews about a month from real today
    clock_set(alice_account, LATER)
    buy_directly(charlie_account, charlie, period="monthly")

    assert len(due_dates(alice_account, clock.today(alice_account))) == 1
    assert due_dates(charlie_account, clock.today(charlie_account)) == []


def test_a_card_that_expired_before_the_accounts_today_is_refused(two_accounts, charlie):
    alice_account, charlie_account = two_accounts
    # Both default cards expire in December 2099; one that expires in 2030 is past for Alice only.
    Card.objects.filter(account__in=[alice_account, charlie_account]).update(exp_year=2030)
    with pytest.raises(PaymentDeclined, match="expired"):
        chargeable_card(alice_account)
    assert chargeable_card(charlie_account).exp_year == 2030


def test_token_usage_is_dated_by_the_accounts_clock(two_accounts):
    alice_account, charlie_account = two_accounts
    for account in (alice_account, charlie_account):
        tokens_grant_signup(account=account)
        tokens_spend(account=account, output_type="ai_image", quantity=1, event_id="gala",
                     idempotency_key=f"k-{account.pk}")
    alice_entries = TokenEntry.objects.filter(account=alice_account)
    assert {entry.created_at for entry in alice_entries} == {LATER}
    assert all(entry.created_at.date() == clock.today()
               for entry in TokenEntry.objects.filter(account=charlie_account))


def test_no_money_path_reads_the_wall_clock_itself():
    """Only pictor_billing/clock.py asks Django or the OS for the time on a money path."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    offenders = []
    for app in ("accounts", "invoices", "payments", "licenses", "tokens", "billing", "pictor_billing"):
        for path in (root / app).rglob("*.py"):
            if "migrations" in path.parts or path.name == "clock.py":
                continue
            source = path.read_text()
            if re.search(r"timezone\.now\(|date\.today\(|datetime\.now\(|localdate\(", source):
                offenders.append(str(path.relative_to(root)))
    # API keys' "last used" hint is not a money path, and keeps the wall clock.
    assert offenders == ["accounts/api_keys.py"]


def test_invoices_keep_the_day_they_were_issued(two_accounts, alice):
    alice_account, _ = two_accounts
    buy_directly(alice_account, alice)
    clock_set(alice_account, LATER + datetime.timedelta(days=40))
    assert Invoice.objects.get(account=alice_account).issued_on == datetime.date(2031, 3, 10)
