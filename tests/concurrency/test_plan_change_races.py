"""Races on PostgreSQL over plan changes and support actions: real threads, each on its own connection,
released together (tests.concurrency.test_races.race). The clock is a test clock, fixed for the race.

- Two upgrades of one license, from two tabs: it is upgraded once, one invoice, one capture.
- Two full refunds of one invoice: the card gets its money back once, one credit note.
- An upgrade racing a cancellation: the license is either upgraded or cancelling, never both.
"""

import datetime
import uuid
from decimal import Decimal

import pytest
from django.db import connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

if connection.vendor != "postgresql":
    pytest.skip(
        f"race tests need PostgreSQL row locks; the default database is {connection.vendor} "
        "(set DATABASE_URL=postgres://... to run them)",
        allow_module_level=True,
    )

from accounts.models import User  # noqa: E402
from billing.changes import change_quote, license_upgrade  # noqa: E402
from billing.checkout import OrderChanged, PaymentPending  # noqa: E402
from billing.clocks import clock_attach  # noqa: E402
from billing.support import SupportRefused, invoice_refund  # noqa: E402
from invoices.models import Invoice  # noqa: E402
from licenses.models import License, PlanChange  # noqa: E402
from licenses.services import ChangeRefused, LicenseActionRefused, license_cancel  # noqa: E402
from payments.models import PaymentAttempt  # noqa: E402
from tests.concurrency.test_races import race  # noqa: E402
from tests.conftest import add_card  # noqa: E402
from tests.factories import UserFactory  # noqa: E402
from tests.helpers import buy_directly, processor_money  # noqa: E402

D = Decimal
UTC = datetime.UTC


@pytest.fixture
def owner(prices):
    user = UserFactory()
    account = clock_attach(account=user.account, start=datetime.datetime(2027, 3, 1, 9, tzinfo=UTC))
    add_card(account)
    lic = License.objects.get(purchase=buy_directly(account, user))
    # Mar 11: 21 of 31 days left. Pro → Premium: −$67.06 + $100.94 = $33.88.
    account.clock_frozen_at = datetime.datetime(2027, 3, 11, 9, tzinfo=UTC)
    account.save(update_fields=["clock_frozen_at"])
    return user, account, lic


def test_two_upgrades_of_one_license_charge_once(owner):
    user, account, lic = owner

    def upgrade():
        return license_upgrade(account=account, user=user, token=uuid.uuid4().hex, license_ids=[lic.pk],
                               tier="premium", period="monthly")

    results = race(upgrade, upgrade, outcomes=(ChangeRefused, OrderChanged, PaymentPending))
    done = [result for result in results if isinstance(result, tuple)]
    assert len(done) == 1, results
    assert PlanChange.objects.count() == 1 and Invoice.objects.filter(kind=Invoice.CHANGE).count() == 1
    assert License.objects.get(pk=lic.pk).tier == "premium"
    # $99.00 for the purchase and $33.88 for the upgrade; a refused upgrade's hold was released.
    assert processor_money() == 9900 + 3388


def test_an_upgrade_racing_a_cancellation_ends_in_one_of_them(owner):
    user, account, lic = owner
    quote = change_quote(account=account, license_ids=[lic.pk], tier="premium", period="monthly")
    assert quote.total_due == D("33.88")

    def upgrade():
        return license_upgrade(account=account, user=user, token=uuid.uuid4().hex, license_ids=[lic.pk],
                               tier="premium", period="monthly")

    def cancel():
        return license_cancel(account=account, license=lic)

    race(upgrade, cancel, outcomes=(ChangeRefused, OrderChanged, LicenseActionRefused))
    lic.refresh_from_db()
    upgraded = PlanChange.objects.exists()
    assert lic.cancel_at_period_end, "a cancellation is never refused by an upgrade"
    assert (lic.tier == "premium") == upgraded
    assert processor_money() == 9900 + (3388 if upgraded else 0)


def test_two_full_refunds_of_one_invoice_give_the_money_back_once(owner):
    _, account, lic = owner
    admin = User.objects.create_superuser(email="support@pictor.example", password="x-Support-secret-1")
    invoice = lic.purchase.invoice

    def refund():
        return invoice_refund(invoice=invoice, amount=D("99.00"), admin=admin, reason="Race")

    results = race(refund, refund, outcomes=(SupportRefused,))
    assert sum(isinstance(result, tuple) for result in results) == 1, results
    assert PaymentAttempt.objects.filter(kind=PaymentAttempt.REFUND, status=PaymentAttempt.SUCCEEDED).count() == 1
    assert Invoice.objects.filter(refers_to=invoice).count() == 1
    invoice.refresh_from_db()
    assert invoice.status == Invoice.CREDITED and processor_money() == 0
