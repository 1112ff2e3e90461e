"""A license stays active until a renewal outcome or its cancellation ends it: reaching its billing
date before the billing run has reached it does not end it; the run then renews or expires it."""

import datetime

import pytest

from billing.renewals import account_prepare, due_dates
from licenses.models import License
from licenses.services import LicenseActionRefused, license_cancel, purchase_quote
from tests.helpers import buy_directly, clock_set, text

BOUGHT = datetime.datetime(2026, 1, 10, 12, 0, tzinfo=datetime.UTC)
AFTER = datetime.datetime(2027, 2, 20, 12, 0, tzinfo=datetime.UTC)  # past the billing date of Jan 10, 2027


@pytest.fixture
def overdue(prices, alice, alice_card):
    """Five Pro annual licenses bought Jan 10, 2026; the account's clock now stands after Jan 10, 2027."""
    buy_directly(alice.account, alice, period="annual", quantity=5, now=BOUGHT)
    clock_set(alice.account, AFTER)
    return list(License.objects.filter(account=alice.account))


def test_a_license_past_its_billing_date_still_counts_until_the_run_reaches_it(overdue, alice):
    quote, _ = purchase_quote(account=alice.account, tier="basic", period="monthly", quantity=1)
    assert quote.active_before == 5
    assert due_dates(alice.account, AFTER.date()) == [datetime.date(2027, 1, 10)]


def test_the_licenses_tab_still_shows_it_active_and_cancellable(overdue, alice_client):
    body = text(alice_client.get("/billing/licenses/"))
    assert body.count(">Active<") == 5
    assert "Cancel license" in body


def test_the_run_renews_it_and_a_cancelled_one_expires_instead(overdue, alice):
    license_cancel(account=alice.account, license=overdue[0])
    summary = account_prepare(alice.account, AFTER.date())
    assert (summary.renewed, summary.expired) == (1, 1)
    ended = License.objects.get(pk=overdue[0].pk)
    assert (ended.status, ended.ended_on) == (License.EXPIRED, datetime.date(2027, 1, 10))
    renewed = License.objects.exclude(pk=overdue[0].pk)
    assert set(renewed.values_list("period_end", flat=True)) == {datetime.date(2028, 1, 10)}


def test_an_expired_license_cannot_be_cancelled(overdue, alice):
    License.objects.filter(pk=overdue[0].pk).update(status=License.EXPIRED)
    with pytest.raises(LicenseActionRefused, match="expired"):
        license_cancel(account=alice.account, license=overdue[0])
