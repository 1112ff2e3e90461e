"""Every device API request needs a live key of the account it acts for."""

import datetime
import hashlib

import pytest
from django.utils import timezone

from accounts.api_keys import api_key_authenticate, api_key_create, api_key_revoke
from accounts.models import ApiKey
from tests.api.conftest import DeviceClient, grant, ledger

ENDPOINTS = [
    ("POST", "/api/v1/usage"),
    ("POST", "/api/v1/events/start"),
    ("POST", "/api/v1/events/wedding/stop"),
    ("GET", "/api/v1/balance"),
    ("GET", "/api/v1/licenses"),
]


def call(device: DeviceClient, method: str, path: str):
    if method == "GET":
        return device.get(path)
    return device.post(path, {"output_type": "ai_image", "quantity": 1, "event_id": "e", "idempotency_key": "k"})


def assert_refused(response):
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "unauthorized"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_request_without_a_key_gets_401(db, method, path):
    assert_refused(call(DeviceClient(None), method, path))


@pytest.mark.parametrize("header", [
    "Bearer",
    "Bearer ",
    "Token pbk_0123456789_abc",
    "Basic YWxpY2U6c2VjcmV0",
    "Bearer pbk_0123456789",
    "Bearer pbk_short_secret",
    "Bearer xyz_0123456789_secret",
    "Bearer pbk_ZZZZZZZZZZ_secret",
    "Bearer " + "pbk_0123456789_" + "x" * 200,
])
def test_a_malformed_authorization_header_gets_401(alice_key, header):
    response = DeviceClient(None).get("/api/v1/balance", headers={"Authorization": header})
    assert_refused(response)


def test_a_key_with_a_known_prefix_and_a_wrong_secret_gets_401(alice_key):
    api_key, plain = alice_key
    forged = plain[:-4] + ("AAAA" if not plain.endswith("AAAA") else "BBBB")
    assert_refused(DeviceClient(forged).get("/api/v1/balance"))


def test_an_unknown_key_gets_401(db):
    assert_refused(DeviceClient("pbk_0123456789_" + "s" * 43).get("/api/v1/balance"))


def test_a_live_key_is_accepted_and_the_scheme_is_case_insensitive(alice_key):
    response = DeviceClient(None).get("/api/v1/balance", headers={"Authorization": f"bearer {alice_key[1]}"})
    assert response.status_code == 200


def test_a_revoked_key_stops_working_at_once(alice, alice_key, alice_device):
    grant(alice.account, 10)
    assert alice_device.usage("ai_image", 1).status_code == 201
    api_key_revoke(account=alice.account, api_key=alice_key[0])
    before = ledger(alice.account)

    assert_refused(alice_device.usage("ai_image", 1))
    assert_refused(alice_device.get("/api/v1/balance"))
    assert ledger(alice.account) == before


def test_another_accounts_key_never_touches_this_account(alice, charlie, charlie_device, prices):
    grant(alice.account, 100)
    grant(charlie.account, 5)
    alice_before = ledger(alice.account)

    assert charlie_device.usage("ai_image", 2).json()["balance"] == 3
    assert charlie_device.get("/api/v1/balance").json() == {"balance": 3}
    assert charlie_device.get("/api/v1/licenses").json() == {"licenses": []}
    assert charlie_device.start("alices-wedding").status_code == 403  # charlie has no license
    assert ledger(alice.account) == alice_before


def test_a_key_is_stored_as_its_sha256_only(alice):
    api_key, plain = api_key_create(account=alice.account, name="Booth 2", created_by=alice)
    row = ApiKey.objects.get(pk=api_key.pk)
    assert plain.startswith(f"pbk_{row.prefix}_")
    assert row.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    stored = [str(value) for value in ApiKey.objects.filter(pk=api_key.pk).values_list().get()]
    assert not any(plain in value or plain.split("_", 2)[2] in value for value in stored)


def test_two_keys_of_one_account_are_distinct_and_both_work(alice):
    first = api_key_create(account=alice.account, name="Booth 1", created_by=alice)[1]
    second = api_key_create(account=alice.account, name="Booth 2", created_by=alice)[1]
    assert first != second
    assert DeviceClient(first).get("/api/v1/balance").status_code == 200
    assert DeviceClient(second).get("/api/v1/balance").status_code == 200


def test_last_used_is_recorded_at_most_once_a_minute(alice_key):
    api_key, plain = alice_key
    first_use = timezone.now()
    assert api_key_authenticate(plain, now=first_use).last_used_at == first_use
    assert api_key_authenticate(plain, now=first_use + datetime.timedelta(seconds=30)).last_used_at == first_use
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == first_use
    later = first_use + datetime.timedelta(minutes=1)
    api_key_authenticate(plain, now=later)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == later


def test_revoking_twice_reports_that_it_was_already_revoked(alice, alice_key):
    assert api_key_revoke(account=alice.account, api_key=alice_key[0]) is True
    assert api_key_revoke(account=alice.account, api_key=alice_key[0]) is False


def test_a_key_cannot_be_revoked_through_another_account(alice_key, charlie):
    assert api_key_revoke(account=charlie.account, api_key=alice_key[0]) is False
    assert DeviceClient(alice_key[1]).get("/api/v1/balance").status_code == 200


def test_a_browser_session_is_no_key(alice_client):
    # A logged-in browser carries a session cookie, never a key: the API ignores the session.
    response = alice_client.get("/api/v1/balance")
    assert_refused(response)
