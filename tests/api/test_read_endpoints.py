"""GET /api/v1/balance and GET /api/v1/licenses: what a device may spend and start."""

import pytest

from licenses.models import License
from licenses.services import license_cancel
from tests.api.conftest import grant, licenses_of
from tokens.models import TokenEntry


def test_the_balance_is_the_ledgers_sum(alice, alice_device):
    assert alice_device.get("/api/v1/balance").json() == {"balance": 0}
    grant(alice.account, 120)
    alice_device.usage("ai_video", 3)
    response = alice_device.get("/api/v1/balance")
    assert response.status_code == 200
    assert response.json() == {"balance": 90}
    assert TokenEntry.objects.filter(account=alice.account).balance() == 90


def test_answers_are_never_cached(alice_device):
    assert alice_device.get("/api/v1/balance")["Cache-Control"] == "no-store"


@pytest.mark.usefixtures("prices")
def test_the_licenses_are_the_active_ones_with_what_they_run_and_their_live_event(alice, alice_device):
    basic, premium, ended = licenses_of(alice.account, "basic", "premium", "pro", user=alice)
    License.objects.filter(pk=ended.pk).update(status=License.EXPIRED)
    license_cancel(account=alice.account, license=basic)
    alice_device.start("gala", "premium")

    response = alice_device.get("/api/v1/licenses")

    assert response.status_code == 200
    assert response.json() == {"licenses": [
        {"license_id": basic.pk, "tier": "basic", "runs": ["basic"], "paid_until": basic.period_end.isoformat(),
         "cancelling": True, "live_event_id": None},
        {"license_id": premium.pk, "tier": "premium", "runs": ["basic", "pro", "premium"],
         "paid_until": premium.period_end.isoformat(), "cancelling": False, "live_event_id": "gala"},
    ]}


def test_an_account_without_licenses_lists_none(alice_device):
    assert alice_device.get("/api/v1/licenses").json() == {"licenses": []}
