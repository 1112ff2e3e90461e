"""POST /api/v1/events/start and /stop: a live event leases one license of its tier or higher."""

import pytest
from django.utils import timezone

from billing.renewals import account_prepare
from licenses.models import EventLease, License
from licenses.services import license_cancel
from tests.api.conftest import licenses_of

pytestmark = pytest.mark.usefixtures("prices")


def test_a_premium_license_runs_premium_pro_and_basic_events(alice, alice_device):
    licenses_of(alice.account, "premium", user=alice)
    for event_tier in ("basic", "pro", "premium"):
        response = alice_device.start(f"{event_tier}-party", event_tier)
        assert response.status_code == 201, response.json()
        assert response.json()["license_tier"] == "premium"
        assert alice_device.stop(f"{event_tier}-party").status_code == 200


def test_a_pro_license_runs_basic_events_but_not_premium_ones(alice, alice_device):
    licenses_of(alice.account, "pro", user=alice)
    assert alice_device.start("basic-party", "basic").status_code == 201
    alice_device.stop("basic-party")

    response = alice_device.start("premium-gala", "premium")

    assert response.status_code == 403
    assert response.json()["error"] == "license_tier_needed"
    assert response.json()["tier_needed"] == "premium"
    assert not EventLease.objects.filter(event_id="premium-gala").exists()


def test_an_account_without_licenses_is_told_the_tier_it_needs(alice, alice_device):
    response = alice_device.start("wedding", "pro")
    assert response.status_code == 403
    assert response.json() == {"error": "license_tier_needed", "tier_needed": "pro",
                               "detail": "Running a Pro event needs an active Pro license or higher."}


def test_the_lowest_sufficient_free_license_is_leased(alice, alice_device):
    # Bought highest first, so the lowest tier is not simply the oldest license.
    by_tier = {lic.tier: lic.pk for lic in licenses_of(alice.account, "premium", "basic", "pro", user=alice)}

    # A Pro event skips the Basic license (not sufficient) and leaves Premium free.
    assert alice_device.start("pro-1", "pro").json()["license_id"] == by_tier["pro"]
    # Basic events take the lowest free tier that can run them: Basic first, then what is left.
    assert alice_device.start("basic-1", "basic").json()["license_id"] == by_tier["basic"]
    assert alice_device.start("basic-2", "basic").json()["license_id"] == by_tier["premium"]

    busy = alice_device.start("basic-3", "basic")
    assert busy.status_code == 409
    assert busy.json()["error"] == "all_licenses_busy"
    assert busy.json()["tier_needed"] == "basic"


def test_the_answer_says_which_license_and_until_when_it_is_paid(alice, alice_device):
    (license,) = licenses_of(alice.account, "pro", user=alice)
    body = alice_device.start("wedding", "basic", device_id="booth-7").json()
    assert body["event_id"] == "wedding"
    assert body["event_tier"] == "basic"
    assert body["device_id"] == "booth-7"
    assert body["license_id"] == license.pk
    assert body["license_tier"] == "pro"
    assert body["paid_until"] == license.period_end.isoformat()


def test_every_sufficient_license_busy_is_409_even_when_lower_ones_are_free(alice, alice_device):
    licenses_of(alice.account, "basic", "pro", user=alice)
    assert alice_device.start("pro-1", "pro").status_code == 201
    assert alice_device.start("pro-2", "pro").status_code == 409  # the Basic license cannot run it


def test_starting_the_same_event_twice_returns_the_same_lease(alice, alice_device):
    licenses_of(alice.account, "pro", "pro", user=alice)
    first = alice_device.start("wedding", "pro")
    again = alice_device.start("wedding", "pro")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert EventLease.objects.filter(event_id="wedding").count() == 1


def test_restarting_a_live_event_at_a_higher_tier_than_its_license_is_409(alice, alice_device):
    licenses_of(alice.account, "basic", "premium", user=alice)
    assert alice_device.start("party", "basic").json()["license_tier"] == "basic"
    again = alice_device.start("party", "premium")
    assert again.status_code == 409
    assert again.json()["error"] == "event_live_on_lower_tier"
    assert EventLease.objects.filter(event_id="party").count() == 1


def test_stopping_an_event_frees_its_license(alice, alice_device):
    (license,) = licenses_of(alice.account, "basic", user=alice)
    alice_device.start("morning", "basic")
    assert alice_device.start("afternoon", "basic").status_code == 409

    stopped = alice_device.stop("morning")

    assert stopped.status_code == 200
    assert stopped.json()["license_id"] == license.pk
    assert stopped.json()["stopped_at"]
    assert alice_device.start("afternoon", "basic").status_code == 201


def test_stopping_an_event_that_is_not_live_is_404(alice, alice_device):
    licenses_of(alice.account, "basic", user=alice)
    assert alice_device.stop("never-started").status_code == 404
    alice_device.start("morning")
    alice_device.stop("morning")
    response = alice_device.stop("morning")
    assert response.status_code == 404
    assert response.json()["error"] == "event_not_live"


def test_an_event_can_run_again_after_it_was_stopped(alice, alice_device):
    licenses_of(alice.account, "basic", user=alice)
    alice_device.start("weekly-party")
    alice_device.stop("weekly-party")
    assert alice_device.start("weekly-party").status_code == 201


def test_an_event_id_with_a_slash_or_spaces_can_be_stopped(alice, alice_device):
    licenses_of(alice.account, "basic", user=alice)
    assert alice_device.start("venue/hall A").status_code == 201
    assert alice_device.post("/api/v1/events/venue%2Fhall%20A/stop").status_code == 200


def test_another_account_cannot_stop_this_accounts_event(alice, alice_device, charlie_device):
    licenses_of(alice.account, "basic", user=alice)
    alice_device.start("wedding")
    assert charlie_device.stop("wedding").status_code == 404
    assert EventLease.objects.get(event_id="wedding").stopped_at is None


def test_a_cancelled_license_keeps_running_its_event_until_its_period_ends(alice, alice_device):
    (license,) = licenses_of(alice.account, "pro", user=alice)
    lease = alice_device.start("festival", "pro").json()
    license_cancel(account=alice.account, license=license)

    # Until its billing date it still runs the event, and the device is told it is cancelling.
    assert alice_device.start("festival", "pro").json() == lease
    listed = alice_device.get("/api/v1/licenses").json()["licenses"]
    assert listed == [{"license_id": license.pk, "tier": "pro", "runs": ["basic", "pro"],
                       "paid_until": license.period_end.isoformat(), "cancelling": True,
                       "live_event_id": "festival"}]

    # Its billing date comes and the billing run expires it: the event can no longer run on it.
    License.objects.filter(pk=license.pk).update(period_end=timezone.now().date())
    account_prepare(alice.account, timezone.now().date())
    assert License.objects.get(pk=license.pk).status == License.EXPIRED
    assert EventLease.objects.get(event_id="festival").stopped_at is not None
    assert alice_device.get("/api/v1/licenses").json() == {"licenses": []}
    refused = alice_device.start("festival", "pro")
    assert refused.status_code == 403
    assert refused.json()["tier_needed"] == "pro"


def test_a_cancelled_license_can_start_new_events_until_its_period_ends(alice, alice_device):
    (license,) = licenses_of(alice.account, "basic", user=alice)
    license_cancel(account=alice.account, license=license)
    assert alice_device.start("last-weekend").status_code == 201


def test_an_expired_license_runs_nothing(alice, alice_device):
    (license,) = licenses_of(alice.account, "premium", user=alice)
    License.objects.filter(pk=license.pk).update(status=License.EXPIRED)
    assert alice_device.start("wedding").status_code == 403


def test_an_event_whose_license_ended_moves_to_another_free_license(alice, alice_device):
    first, second = licenses_of(alice.account, "pro", "pro", user=alice)
    assert alice_device.start("festival", "pro").json()["license_id"] == first.pk
    License.objects.filter(pk=first.pk).update(status=License.EXPIRED)  # its renewal failed for good

    moved = alice_device.start("festival", "pro")

    assert moved.status_code == 201
    assert moved.json()["license_id"] == second.pk
    assert EventLease.objects.filter(event_id="festival", stopped_at__isnull=True).get().license_id == second.pk
