"""The billing run renews accounts in batches (a task for up to BILLING_ACCOUNTS_PER_TASK accounts, a
transaction per group of them and date, each group's charges sent while the next is prepared) and
settles the processor's answers a batch at a time. A batch must bill each account exactly as a run of
that account alone would, and cost the same number of queries however many accounts it holds.

Each situation the run meets is built twice, on two accounts due the same day: one set is renewed an
account at a time, the other in one batch, and their books are compared line by line.
"""

import datetime
import re
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Renewal
from billing.renewals import accounts_prepare, accounts_renew, renewal_charges_send
from billing.scheduler import schedule_pass
from invoices.models import Invoice, InvoiceSequence
from licenses.models import License, LicenseTerm
from payments.models import Card, CreditEntry, PaymentAttempt
from pictor_billing import clock
from tests.conftest import DECLINES_CHARGES, add_card
from tests.factories import AccountFactory, UserFactory
from tests.helpers import buy_directly, clock_set

pytestmark = pytest.mark.django_db

D = Decimal
UTC = datetime.UTC
DUE = datetime.date(2027, 3, 15)
A_MONTH_BEFORE = datetime.datetime(2027, 2, 15, 10, tzinfo=UTC)
A_YEAR_BEFORE = datetime.datetime(2026, 3, 15, 10, tzinfo=UTC)
RUN_AT = datetime.datetime(2027, 3, 15, 6, tzinfo=UTC)


def _credit(account, amount):
    CreditEntry.objects.create(account=account, kind=CreditEntry.ADMIN_CREDIT, amount=D(amount), note="goodwill")


def _schedule_change(account, **renews_as):
    License.objects.filter(account=account).update(**renews_as)


# Each builds one account's situation on a fresh account with a Visa, its licenses due on DUE.
SITUATIONS = {
    "two pro monthly": lambda a: buy_directly(a, now=A_MONTH_BEFORE, quantity=2),
    "five basic monthly, in the 10% bracket": lambda a: buy_directly(a, now=A_MONTH_BEFORE, tier="basic",
                                                                     quantity=5),
    "annual and monthly on the same day": lambda a: (
        buy_directly(a, now=A_YEAR_BEFORE, tier="premium", period="annual"),
        buy_directly(a, now=A_MONTH_BEFORE, tier="basic")),
    "credit pays part": lambda a: (buy_directly(a, now=A_MONTH_BEFORE), _credit(a, "40.00")),
    "credit pays all": lambda a: (buy_directly(a, now=A_MONTH_BEFORE, tier="basic"), _credit(a, "100.00")),
    "one of two cancelled": lambda a: (
        buy_directly(a, now=A_MONTH_BEFORE, quantity=2),
        License.objects.filter(pk=License.objects.filter(account=a).order_by("pk")[0].pk)
        .update(cancel_at_period_end=True)),
    "all cancelled": lambda a: (buy_directly(a, now=A_MONTH_BEFORE),
                                License.objects.filter(account=a).update(cancel_at_period_end=True)),
    "a card that declines": lambda a: (buy_directly(a, now=A_MONTH_BEFORE),
                                       Card.objects.filter(account=a).update(is_default=False),
                                       Card.objects.filter(pk=add_card(a, DECLINES_CHARGES).pk)
                                       .update(is_default=True)),
    "no default card": lambda a: (buy_directly(a, now=A_MONTH_BEFORE),
                                  Card.objects.filter(account=a).update(is_default=False)),
    "a downgrade scheduled": lambda a: (buy_directly(a, now=A_MONTH_BEFORE, quantity=2),
                                        _schedule_change(a, next_tier="basic", next_period="monthly")),
    "annual to monthly scheduled": lambda a: (buy_directly(a, now=A_YEAR_BEFORE, period="annual"),
                                              _schedule_change(a, next_tier="pro", next_period="monthly")),
}


def account_in(situation: str):
    account = UserFactory().account
    add_card(account)
    SITUATIONS[situation](account)
    clock_set(account, RUN_AT)
    return account


def books_of(account, mailoutbox) -> dict:
    """Everything the run wrote for the account, without what differs from account to account by nature
    (ids, invoice numbers, the buyer's name and the processor's references)."""
    def numberless(text):
        return re.sub(r"/renewals/\d+/", "/renewals/…/", re.sub(r"PB-\d{4}-\d{6}", "PB-…", text))

    invoices = Invoice.objects.filter(account=account, kind=Invoice.RENEWAL).order_by("pk")
    email = account.users.get().email
    return {
        "renewals": [(r.billing_date, r.status, r.failed_attempts, r.first_failed_on, r.next_retry_on,
                      r.invoice_id is not None) for r in Renewal.objects.filter(account=account).order_by("pk")],
        "invoices": [(i.status, i.issued_on, i.description, i.subtotal, i.discount_total, i.credit_applied, i.total,
                      i.service_from, i.service_to,
                      [(line.position, line.kind, line.description, line.quantity, line.unit_price, line.amount)
                       for line in i.lines.all()],
                      [(change.from_status, change.to_status, change.reason) for change in i.status_changes.all()])
                     for i in invoices],
        "licenses": sorted((lic.tier, lic.period, lic.status, lic.period_start, lic.period_end, lic.list_price,
                            lic.discount_rate, lic.next_tier, lic.ended_on, lic.group.period, lic.group.ended_on)
                           for lic in License.objects.filter(account=account).select_related("group")),
        "monthly anchor": type(account).objects.get(pk=account.pk).monthly_anchor_day,
        "terms": sorted((t.kind, t.starts_on, t.ends_on, t.tier, t.period, t.list_price, t.rate, t.paid)
                        for t in LicenseTerm.objects.filter(license__account=account, kind=LicenseTerm.RENEWAL)),
        "attempts": [(a.status, a.amount, a.description, a.off_session, a.idempotency_key.rsplit(":", 1)[1],
                      a.failure_reason, a.card_id is not None)
                     for a in PaymentAttempt.objects.filter(account=account, purpose=PaymentAttempt.RENEWAL)
                     .order_by("pk")],
        "credit": [(e.kind, e.amount, e.note) for e in CreditEntry.objects.filter(account=account).order_by("pk")],
        "emails": sorted((numberless(m.subject), numberless(m.body)) for m in mailoutbox if email in m.to),
    }


def test_a_batch_bills_each_account_as_a_run_of_that_account_alone_would(
        prices, mailoutbox, django_capture_on_commit_callbacks):
    alone = {situation: account_in(situation) for situation in SITUATIONS}
    batched = {situation: account_in(situation) for situation in SITUATIONS}

    with django_capture_on_commit_callbacks(execute=True):
        for account in alone.values():
            summary = accounts_prepare([account], DUE)
            summary.add(renewal_charges_send(concurrency=1, account=account))
        # As a renewal task runs it: prepared a group at a time, the charges sent from 4 threads meanwhile.
        batch = accounts_renew(list(batched.values()), DUE, concurrency=4)

    for situation in SITUATIONS:
        assert books_of(batched[situation], mailoutbox) == books_of(alone[situation], mailoutbox), situation
    assert books_of(batched["credit pays all"], mailoutbox)["invoices"][0][0] == Invoice.PAID
    assert books_of(batched["no default card"], mailoutbox)["renewals"][0][1] == Renewal.PAST_DUE
    # All cancelled: nothing renewed; the rest renewed once each, and their charges went in one batch.
    assert (batch.accounts, batch.renewed) == (len(SITUATIONS), len(SITUATIONS) - 1)
    assert batch.outcomes == Counter(succeeded=len(SITUATIONS) - 4, failed=1)
    sequence = InvoiceSequence.objects.get(series="", year=2027)
    assert sorted(Invoice.objects.filter(year=2027).values_list("sequence", flat=True)) == list(
        range(1, sequence.last_number + 1)), "numbered gap-free, one number each"


def test_a_batch_run_again_bills_nothing_twice(prices, django_capture_on_commit_callbacks):
    accounts = [account_in("two pro monthly") for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        assert accounts_prepare(accounts[:2], DUE).renewed == 2
        # The first two are recorded already: only the third renews.
        assert accounts_prepare(accounts, DUE).renewed == 1
        assert renewal_charges_send(concurrency=1).outcomes == Counter(succeeded=3)
        assert renewal_charges_send(concurrency=1).outcomes == Counter()
    assert Counter(Renewal.objects.values_list("account_id", flat=True)) == Counter(a.pk for a in accounts)
    assert Invoice.objects.filter(kind=Invoice.RENEWAL).count() == 3


def queries_to_renew(count: int, situation: str = "five basic monthly, in the 10% bracket") -> tuple[int, int]:
    accounts = [account_in(situation) for _ in range(count)]
    with CaptureQueriesContext(connection) as prepared:
        accounts_prepare(accounts, DUE)
    with CaptureQueriesContext(connection) as charged:
        assert renewal_charges_send(concurrency=1, batch=count).outcomes == Counter(succeeded=count)
    return len(prepared), len(charged)


def test_a_batch_takes_as_many_queries_for_six_accounts_as_for_two(prices):
    queries_to_renew(1)  # the price list read once, and cached
    assert queries_to_renew(6) == queries_to_renew(2)


def test_a_batch_of_a_hundred_accounts_renews_and_charges_in_fewer_than_one_query_an_account(
        prices, django_assert_max_num_queries):
    accounts = [account_in("two pro monthly") for _ in range(100)]
    with django_assert_max_num_queries(100):
        assert accounts_prepare(accounts, DUE).renewed == 100
        assert renewal_charges_send(concurrency=1, batch=100).outcomes == Counter(succeeded=100)


def test_the_scheduler_enqueues_a_task_per_batch_of_accounts_due(prices, settings, django_capture_on_commit_callbacks):
    settings.BILLING_ACCOUNTS_PER_TASK = 2
    due = [account_in("two pro monthly") for _ in range(5)]
    later = AccountFactory()  # nothing due
    for account in due:  # real time stands at the billing date for these accounts' run
        clock_set(account, None)
    License.objects.update(period_end=clock.today())
    with django_capture_on_commit_callbacks(execute=True):
        enqueued = schedule_pass()
    assert (enqueued["accounts"], enqueued["renewal tasks"]) == (5, 3)
    assert sorted(Renewal.objects.values_list("account_id", flat=True)) == [a.pk for a in due]
    assert not Renewal.objects.filter(account=later).exists()
