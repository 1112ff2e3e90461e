"""Races on PostgreSQL: real threads, each on its own connection, started together by a Barrier.

SQLite has no row locks (settings.py serializes it with IMMEDIATE transactions instead), so these
tests only mean something on PostgreSQL and skip elsewhere. Run them with, e.g.:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pictor_race_check .venv/bin/python -m pytest tests/concurrency

Every expected figure is worked out by hand from docs/rules.md in the comments; the code under test is
never asked what the answer should be. No mocks and no sleeps: the sandbox gateway is the real
one, and the only synchronisation is the Barrier.
"""

import datetime
import re
import secrets
import threading
import traceback
from collections import Counter
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.db.models import Sum
from django.test import Client

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

if connection.vendor != "postgresql":
    pytest.skip(
        f"race tests need PostgreSQL row locks; the default database is {connection.vendor} "
        "(set DATABASE_URL=postgres://... to run them)",
        allow_module_level=True,
    )

from accounts.models import User  # noqa: E402
from billing.checkout import OrderChanged, PaymentPending  # noqa: E402
from billing.purchase import license_purchase  # noqa: E402
from billing.signup import account_signup, email_verify  # noqa: E402  (after the skip: keeps the reason first)
from billing.top_up import tokens_top_up  # noqa: E402
from billing.views.purchase import TOKEN_SALT  # noqa: E402
from invoices.models import Invoice, InvoiceLine, InvoiceSequence  # noqa: E402
from licenses.models import Coupon, CouponRedemption, License, Purchase  # noqa: E402
from licenses.services import purchase_quote  # noqa: E402
from payments.models import CreditEntry, PaymentAttempt  # noqa: E402
from payments.services import credit_balance  # noqa: E402
from pictor_billing.form_tokens import form_token_new  # noqa: E402
from tests.conftest import add_card  # noqa: E402
from tests.factories import CouponFactory, UserFactory  # noqa: E402
from tests.helpers import charge_of, charges, clock_set, processor_money  # noqa: E402
from tokens.models import TokenEntry, TopUp  # noqa: E402
from tokens.services import token_balance  # noqa: E402

D = Decimal
# One fixed instant for every call of a test, so "today", the year of the invoice numbers and the
# unused share of a license's period (days left / days in period) cannot move under a race.
NOW = datetime.datetime(2026, 3, 10, 12, 0, tzinfo=datetime.UTC)
JOIN_TIMEOUT = 60  # seconds; a thread still running after this is a hang (lock wait), not a slow test


def race(*calls, outcomes: tuple[type[BaseException], ...] = ()):
    """Run each zero-argument callable in its own thread, all released at once; return their results.

    Each thread opens its own database connection before the barrier (so connecting is not part
    of the race) and closes it at the end. An exception of one of the `outcomes` types is that
    thread's result (a refusal the race may legitimately end in); any other fails the test with
    the thread's traceback.
    """
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)
    failures = [None] * len(calls)

    def worker(index, call):
        try:
            connection.ensure_connection()
            barrier.wait(timeout=JOIN_TIMEOUT)
            results[index] = call()
        except outcomes as expected:
            results[index] = expected
        except BaseException:  # noqa: BLE001 - reported below, with the thread's traceback
            failures[index] = traceback.format_exc()
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call), name=f"race-{i}", daemon=True)
               for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    hung = [thread.name for thread in threads if thread.is_alive()]
    assert not hung, f"threads still running after {JOIN_TIMEOUT}s (a lock wait that never ends?): {hung}"
    errors = [f"thread {i}:\n{failure}" for i, failure in enumerate(failures) if failure]
    assert not errors, "\n".join(errors)
    return results


def new_token() -> str:
    """A purchase form's one-time nonce, as the view passes it to the service."""
    return secrets.token_hex(16)


def buyer():
    """A user whose account has a default card (the sandbox's 4242 test number)."""
    user = UserFactory()
    add_card(user.account)
    clock_set(user.account, NOW)
    return user


def buy(user, *, token=None, tier="pro", period="annual", quantity=1, coupon=""):
    """A zero-argument callable completing one purchase, for `race`."""
    token = token or new_token()
    return lambda: license_purchase(account=user.account, user=user, token=token, tier=tier, period=period,
                                    quantity=quantity, coupon_code=coupon)


def assert_invoice_numbers_gap_free(expected_count: int) -> None:
    """This year's invoices are numbered 1..n with no gap and no repeat, and the sequence agrees."""
    invoices = list(Invoice.objects.filter(year=NOW.year).order_by("sequence"))
    assert len(invoices) == expected_count
    assert [invoice.sequence for invoice in invoices] == list(range(1, expected_count + 1))
    assert [invoice.number for invoice in invoices] == [
        f"PB-{NOW.year}-{n:06d}" for n in range(1, expected_count + 1)]
    assert InvoiceSequence.objects.get(year=NOW.year).last_number == expected_count


def lines_sum(invoices, kind: str) -> Decimal:
    return InvoiceLine.objects.filter(invoice__in=invoices, kind=kind).aggregate(s=Sum("amount"))["s"] or D("0")


def completed(results):
    """The purchases (or top-ups) a race completed, leaving out the refusals."""
    return [result[0] for result in results if isinstance(result, tuple)]


def assert_processor_took_what_the_books_say():
    """The sandbox processor holds exactly the money our succeeded attempts record: nothing more is
    held or taken (every released authorization really was released)."""
    assert processor_money() == sum(int(amount * 100) for amount in charges().values_list("amount", flat=True))


def test_ten_accounts_race_for_the_last_coupon_redemption_exactly_one_gets_it(prices):
    # Two earlier redemptions, made the ordinary way, then a limit of "already redeemed + 1".
    coupon = CouponFactory(code="LASTONE", kind=Coupon.PERCENT, value=D("10"), combines_with_volume=True)
    for _ in range(2):
        purchase, _ = buy(buyer(), coupon="LASTONE")()
        assert purchase.coupon_id == coupon.pk
    redeemed_before = coupon.redemptions.count()
    assert redeemed_before == 2
    Coupon.objects.filter(pk=coupon.pk).update(max_redemptions=redeemed_before + 1)

    racers = [buyer() for _ in range(10)]
    # Typed differently by each customer: codes are case-insensitive, surrounding spaces ignored.
    results = race(*(buy(user, coupon=" lastone ") for user in racers), outcomes=(OrderChanged,))

    # Each racer was quoted with the coupon unless the winner had already redeemed it. Those quoted
    # $891.00 whose settle came after the winner's could no longer be honoured: their authorization
    # was released and nothing was charged; those quoted $990.00 bought at that price.
    purchases = completed(results)
    refused = [result for result in results if isinstance(result, OrderChanged)]
    assert len(purchases) + len(refused) == 10
    assert coupon.redemptions.count() == redeemed_before + 1
    redemptions = CouponRedemption.objects.filter(account__in=[user.account for user in racers])
    winner = redemptions.get().purchase
    assert (winner.coupon_id, winner.total_due, winner.invoice.total) == (coupon.pk, D("891.00"), D("891.00"))
    assert lines_sum([winner.invoice], "coupon") == D("-99.00")
    assert winner.invoice.discount_total == D("99.00")
    assert charge_of(winner.invoice).amount == D("891.00")
    for purchase in purchases:
        if purchase.pk == winner.pk:
            continue
        assert (purchase.coupon_id, purchase.total_due) == (None, D("990.00"))
        assert (purchase.invoice.total, purchase.invoice.discount_total) == (D("990.00"), D("0.00"))
        assert charge_of(purchase.invoice).amount == D("990.00")
        assert not purchase.invoice.lines.filter(kind="coupon").exists()
    for result in refused:  # shown the new summary: the coupon is used up
        assert result.quote.coupon_message == "LASTONE has been fully redeemed"
        assert result.quote.total_due == D("990.00")
    refused_accounts = [user.account for user in racers
                        if not Purchase.objects.filter(account=user.account).exists()]
    assert len(refused_accounts) == len(refused)
    for account in refused_accounts:
        assert not Invoice.objects.filter(account=account).exists()
        assert set(PaymentAttempt.objects.filter(account=account).values_list("status", flat=True)) == {
            PaymentAttempt.CANCELLED}
    assert_processor_took_what_the_books_say()

    # What a racer sees in the Order Summary now: the coupon is used up, the order still works.
    loser_account = racers[0].account if racers[0].account_id != winner.account_id else racers[1].account
    quote, _ = purchase_quote(account=loser_account, tier="pro", period="annual", quantity=1,
                              coupon_code="LASTONE")
    assert (quote.coupon_applied, quote.coupon_discount) == (False, D("0.00"))
    assert quote.coupon_message == "LASTONE has been fully redeemed"
    client = Client()
    client.force_login(loser_account.users.get())
    response = client.get("/billing/licenses/summary/",
                          {"period": "annual", "tier": "pro", "quantity": 1, "coupon": "LASTONE"},
                          HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert "LASTONE has been fully redeemed" in body
    assert 'data-summary="coupon_discount"' not in body
    assert '<data value="990.00" data-summary="total_due">$990.00</data>' in body

    assert_invoice_numbers_gap_free(2 + len(purchases))


def test_same_purchase_form_submitted_twice_at_once_completes_once(prices, alice, alice_card):
    token = new_token()
    # Two Pro monthly licenses on an account with no monthly anchor yet: no pro-rata, no volume
    # discount, 2 x $99.00 = $198.00, charged once. The second submission either finds the purchase
    # done, or finds its payment still being confirmed; it never pays again.
    results = race(buy(alice, token=token, period="monthly", quantity=2),
                   buy(alice, token=token, period="monthly", quantity=2), outcomes=(PaymentPending,))

    assert sorted(type(result).__name__ for result in results) == ["PaymentPending", "tuple"] or (
        sorted(created for _, created in results) == [False, True])
    assert Purchase.objects.filter(account=alice.account).count() == 1
    assert charges().filter(account=alice.account).count() == 1
    assert Invoice.objects.filter(account=alice.account).count() == 1
    assert License.objects.filter(account=alice.account).count() == 2
    purchase = Purchase.objects.get()
    assert purchase.total_due == purchase.invoice.total == charge_of(purchase.invoice).amount == D("198.00")
    assert PaymentAttempt.objects.count() == 1
    assert_processor_took_what_the_books_say()
    assert_invoice_numbers_gap_free(1)


def test_same_purchase_form_posted_twice_at_once_through_the_view_completes_once(prices, alice, alice_card):
    # The browser path: a double click posts the same signed form token (and shown order) twice.
    clients = []
    for _ in range(2):
        client = Client()
        client.force_login(alice)
        clients.append(client)
    choice = {"period": "annual", "tier": "pro", "quantity": "3", "coupon": ""}
    shown = clients[0].post("/billing/licenses/summary/", choice, HTTP_HX_REQUEST="true")
    form = {**choice, "token": form_token_new(account_id=alice.account_id, salt=TOKEN_SALT),
            "quote": re.search(r'name="quote" value="([^"]+)"', shown.content.decode()).group(1)}

    responses = race(*(lambda client=client: client.post("/billing/licenses/add/", form) for client in clients))

    statuses = sorted(response.status_code for response in responses)
    assert statuses in ([202, 302], [302, 302])
    notes = sorted(str(message) for response in responses for message in get_messages(response.wsgi_request))
    assert notes[0].startswith("Purchase complete: 3 Pro licenses, annual. $2,970.00 charged to Visa ending 4242.")
    if statuses == [302, 302]:
        assert notes[1].startswith("This purchase was already completed") and "Nothing more was charged." in notes[1]
    else:
        pending = next(response for response in responses if response.status_code == 202)
        assert "is being confirmed with your bank" in pending.content.decode()
    # 3 Pro annual, nothing active before: 3 x $990.00 = $2,970.00, charged once.
    assert Purchase.objects.count() == charges().count() == Invoice.objects.count() == 1
    assert License.objects.filter(account=alice.account).count() == 3
    assert charges().get().amount == D("2970.00")
    assert_processor_took_what_the_books_say()


# What the n-th license of this account costs, bought alone as one Pro annual license on NOW.
#  5th: 10% bracket. $990.00 - $99.00 = $891.00 left. Adjustment for the 4 bought today at 0%:
#       (0.10 - 0) x $990.00 x 365/365 = $99.00 each, $396.00, used at once -> $495.00 due.
#  6th-9th: still 10%, no adjustment: $891.00 due each.
# 10th: 15% bracket. $990.00 - $148.50 = $841.50 left. Adjustment for the 9 others, all at 10%
#       now: 0.05 x $990.00 x 1 = $49.50 each, $445.50, used at once -> $396.00 due.
NTH_LICENSE_DUE = {5: D("495.00"), 6: D("891.00"), 7: D("891.00"), 8: D("891.00"), 9: D("891.00"),
                   10: D("396.00")}


def test_concurrent_purchases_on_one_account_charge_only_orders_that_still_hold(prices, alice, alice_card):
    # Four Pro annual licenses first, bought today at rate 0% ($3,960.00).
    purchase, _ = buy(alice, quantity=4)()
    assert purchase.total_due == D("3960.00")
    account = alice.account

    # Six purchases of one more Pro annual license each, all at once, from six open forms. Each is
    # authorized for the total its form showed; a purchase that lands first changes the others'
    # quotes (the bracket, the adjustment), so those are released, charge nothing, and show the
    # new summary. Whatever completes is numbered in order and priced as the n-th license.
    results = race(*(buy(alice) for _ in range(6)), outcomes=(OrderChanged,))
    done = completed(results)
    assert done, "at least the first purchase to settle completes"
    by_number = sorted(done, key=lambda purchase: purchase.invoice.sequence)
    assert [purchase.total_due for purchase in by_number] == [NTH_LICENSE_DUE[5 + i] for i in range(len(done))]
    assert_processor_took_what_the_books_say()
    released = PaymentAttempt.objects.filter(account=account, status=PaymentAttempt.CANCELLED).count()
    assert released == 6 - len(done)

    # The refused ones, bought again from the new summary one after another, complete the books
    # exactly as if all six had gone through one at a time.
    for _ in range(6 - len(done)):
        buy(alice)()
    licenses = License.objects.filter(account=account)
    assert licenses.active().count() == 10
    assert set(licenses.values_list("discount_rate", flat=True)) == {D("0.15")}
    assert_invoice_numbers_gap_free(1 + 6)
    invoices = list(Invoice.objects.filter(account=account))
    # Every license now paid at 15%: 10 x $841.50 = $8,415.00 charged in all.
    assert sum(invoice.total for invoice in invoices) == D("8415.00")
    assert charges().filter(account=account).aggregate(s=Sum("amount"))["s"] == D("8415.00")
    assert_processor_took_what_the_books_say()

    # Volume adjustments: two credits (at the 5th and the 10th license), never one twice, and the
    # credit ledger says exactly what the invoices say.
    adjustments = CreditEntry.objects.filter(account=account, kind=CreditEntry.VOLUME_ADJUSTMENT)
    assert sorted(adjustments.values_list("amount", flat=True)) == [D("396.00"), D("445.50")]
    assert -lines_sum(invoices, "volume_adjustment") == D("841.50")
    assert lines_sum(invoices, "credit_carried") == D("0")
    applied = CreditEntry.objects.filter(account=account, kind=CreditEntry.APPLIED)
    applied_total = -applied.aggregate(s=Sum("amount"))["s"]
    assert applied_total == sum(invoice.credit_applied for invoice in invoices) == D("841.50")
    for invoice in invoices:  # each credit lands on the invoice whose lines show it
        on_invoice = -lines_sum([invoice], "volume_adjustment")
        in_ledger = adjustments.filter(invoice=invoice).aggregate(s=Sum("amount"))["s"] or D("0")
        assert on_invoice == in_ledger
    assert credit_balance(account) == D("0.00")


def test_concurrent_purchases_by_different_accounts_share_one_gap_free_numbering(prices):
    # No invoice yet this year: the first issuers race to create the year's sequence row too.
    users = [buyer() for _ in range(8)]
    assert not InvoiceSequence.objects.filter(year=NOW.year).exists()

    results = race(*(buy(user) for user in users))

    assert all(created for _, created in results)
    assert_invoice_numbers_gap_free(8)
    assert Counter(invoice.account_id for invoice in Invoice.objects.all()) == Counter(
        user.account_id for user in users)


def test_concurrent_top_ups_with_distinct_tokens_all_land_once(packages):
    user = account_signup(company_name="Token Race Ltd", email="tokens@example.com", password="x" * 20)
    email_verify(user=user)
    account = user.account
    add_card(account)
    clock_set(account, NOW)
    assert token_balance(account) == 50  # the signup grant

    chosen = packages * 2  # Starter, Standard, Large, Event Pro, twice: 8 top-ups at once
    tokens = [new_token() for _ in chosen]
    results = race(*(lambda package=package, token=token: tokens_top_up(account=account, package=package,
                                                                         token=token)
                     for package, token in zip(chosen, tokens, strict=True)))

    assert all(created for _, created in results)
    # 50 + 2 x (100 + 500 + 1,000 + 5,000) = 13,250 tokens.
    assert token_balance(account) == 50 + sum(package.tokens for package in chosen) == 13250
    top_ups = TopUp.objects.filter(account=account)
    assert sorted(top_ups.values_list("token", flat=True)) == sorted(tokens)
    entries = TokenEntry.objects.filter(account=account, kind=TokenEntry.TOP_UP)
    assert entries.count() == len(chosen)
    assert sorted(entries.values_list("invoice_id", flat=True)) == sorted(top_ups.values_list("invoice_id", flat=True))
    for top_up in top_ups:
        assert list(entries.filter(invoice=top_up.invoice).values_list("amount", flat=True)) == [top_up.tokens]
    # Each top-up is its own invoice: 2 x ($10 + $45 + $80 + $350) = $970.00, numbered gap-free.
    assert_invoice_numbers_gap_free(len(chosen))
    assert Invoice.objects.filter(account=account, kind=Invoice.TOP_UP).count() == len(chosen)
    assert charges().filter(account=account).aggregate(s=Sum("amount"))["s"] == D("970.00")


def test_four_clicks_on_one_verification_link_at_once_grant_the_welcome_tokens_once():
    user = account_signup(company_name="Eager Clicker Ltd", email="eager@example.com", password="x" * 20)

    results = race(*(lambda: email_verify(user=User.objects.get(pk=user.pk)) for _ in range(4)))

    assert sorted(results) == [False, False, False, True]
    assert token_balance(user.account) == 50
    assert TokenEntry.objects.filter(account=user.account, kind=TokenEntry.SIGNUP_GRANT).count() == 1
