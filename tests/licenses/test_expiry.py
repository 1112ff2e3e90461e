"""A license whose billing date has passed without a renewal no longer counts, shows or acts as active."""

import datetime

import pytest
from django.utils import timezone

from licenses.models import License
from licenses.services import LicenseActionRefused, license_cancel, purchase_quote
from tests.helpers import buy_directly, text


@pytest.fixture
def lapsed(prices, alice, alice_card):
    """Five Pro licenses bought 14 months ago, annual, never renewed."""
    long_ago = timezone.now() - datetime.timedelta(days=430)
    buy_directly(alice.account, alice, period="annual", quantity=5, now=long_ago)
    return list(License.objects.filter(account=alice.account))


def test_lapsed_licenses_do_not_count_towards_the_volume_bracket(lapsed, alice):
    quote, _ = purchase_quote(account=alice.account, tier="basic", period="monthly", quantity=1)
    assert quote.active_before == 0
    assert quote.volume_rate == 0


def test_the_licenses_tab_shows_lapsed_licenses_as_expired_without_a_cancel_button(lapsed, alice_client):
    body = text(alice_client.get("/billing/licenses/"))
    assert body.count(">Expired<") == 5
    assert "Cancel license" not in body


def test_a_lapsed_license_cannot_be_cancelled(lapsed, alice):
    with pytest.raises(LicenseActionRefused, match="expired"):
        license_cancel(account=alice.account, license=lapsed[0])
