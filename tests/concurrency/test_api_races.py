"""The device API under concurrent requests, on PostgreSQL: real threads, each with its own
connection and its own django.test.Client, going through the whole HTTP stack (key check,
body validation, view, service), released together by a Barrier.

Skipped on SQLite, like test_races.py (whose `race` helper this reuses). Run with, e.g.:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pictor_race_check .venv/bin/python -m pytest tests/concurrency
"""

import json
import uuid
from collections import Counter

import pytest
from django.db import connection
from django.test import Client

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

if connection.vendor != "postgresql":
    pytest.skip(
        f"race tests need PostgreSQL row locks; the default database is {connection.vendor} "
        "(set DATABASE_URL=postgres://... to run them)",
        allow_module_level=True,
    )

from accounts.api_keys import api_key_create  # noqa: E402  (after the skip: keeps the reason first)
from licenses.models import EventLease  # noqa: E402
from tests.api.conftest import grant, licenses_of  # noqa: E402
from tests.concurrency.test_races import race  # noqa: E402
from tests.factories import UserFactory  # noqa: E402
from tokens.models import TokenEntry, UsageRequest  # noqa: E402
from tokens.services import token_balance  # noqa: E402


def device_key(account) -> str:
    return api_key_create(account=account, name="racing booth", created_by=None)[1]


def request(key: str, path: str, body: dict):
    """A zero-argument callable sending one API request from a client of its own, for `race`."""
    client = Client()
    return lambda: client.post(path, json.dumps(body), content_type="application/json",
                               headers={"Authorization": f"Bearer {key}"})


def usage(key: str, *, idempotency_key: str | None = None, quantity: int = 1):
    return request(key, "/api/v1/usage", {"output_type": "ai_image", "quantity": quantity, "event_id": "race",
                                          "idempotency_key": idempotency_key or uuid.uuid4().hex})


def start(key: str, event_id: str, event_tier: str = "pro", device_id: str = "booth"):
    return request(key, "/api/v1/events/start", {"event_id": event_id, "event_tier": event_tier,
                                                 "device_id": device_id})


def test_fifty_devices_spending_one_token_each_from_twenty_exactly_twenty_succeed():
    account = UserFactory().account
    grant(account, 20)
    key = device_key(account)

    responses = race(*(usage(key) for _ in range(50)))

    # AI image = 1 token: 20 debits of 1 fit in a balance of 20; the 30 others find 0 left.
    assert Counter(response.status_code for response in responses) == {201: 20, 402: 30}
    assert sorted(response.json()["balance"] for response in responses if response.status_code == 201) == \
        list(range(20))
    assert {response.json()["balance"] for response in responses if response.status_code == 402} == {0}
    entries = TokenEntry.objects.filter(account=account).order_by("id")
    assert token_balance(account) == entries.balance() == entries.last().balance_after == 0
    # Never below zero, at any point: the running balance steps down 20, 19, ... 0.
    assert list(entries.values_list("balance_after", flat=True)) == list(range(20, -1, -1))
    assert entries.filter(kind=TokenEntry.USAGE).count() == UsageRequest.objects.filter(account=account).count() == 20


def test_one_usage_report_retried_at_once_by_ten_threads_debits_once():
    account = UserFactory().account
    grant(account, 100)
    key = device_key(account)

    responses = race(*(usage(key, idempotency_key="booth-1-output-7", quantity=3) for _ in range(10)))

    assert {response.status_code for response in responses} == {201}
    first = responses[0].json()
    assert all(response.json() == first for response in responses)  # every retry gets the first answer
    assert token_balance(account) == 97
    assert TokenEntry.objects.filter(account=account, kind=TokenEntry.USAGE).count() == 1


def test_ten_events_starting_at_once_on_three_sufficient_licenses_get_exactly_three_leases(prices):
    user = UserFactory()
    account = user.account
    pro_licenses = licenses_of(account, "pro", "premium", "pro", user=user)
    licenses_of(account, "basic", "basic", user=user)  # cannot run Pro events
    key = device_key(account)

    responses = race(*(start(key, f"event-{n}") for n in range(10)))

    assert Counter(response.status_code for response in responses) == {201: 3, 409: 7}
    leases = EventLease.objects.filter(account=account, stopped_at__isnull=True)
    assert leases.count() == 3
    assert sorted(leases.values_list("license_id", flat=True)) == sorted(lic.pk for lic in pro_licenses)
    assert sorted(response.json()["event_id"] for response in responses if response.status_code == 201) == \
        sorted(leases.values_list("event_id", flat=True))


def test_one_event_started_at_once_by_five_devices_gets_one_lease(prices):
    user = UserFactory()
    licenses_of(user.account, "pro", "pro", user=user)
    key = device_key(user.account)

    responses = race(*(start(key, "gala", device_id=f"booth-{n}") for n in range(5)))

    assert Counter(response.status_code for response in responses) == {201: 1, 200: 4}
    assert len({response.json()["license_id"] for response in responses}) == 1
    assert EventLease.objects.filter(account=user.account).count() == 1
