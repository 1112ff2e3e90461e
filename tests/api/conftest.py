"""Fixtures for the device API: keys for alice's and charlie's accounts, a JSON client, tokens and licenses.

As everywhere in the suite: alice owns "Alice Events" (bob is on her team), charlie has an
account of his own.
"""

import json
import uuid

import pytest
from django.test import Client

from accounts.api_keys import api_key_create
from tests.conftest import add_card
from tests.helpers import buy_directly
from tokens.models import TokenEntry
from tokens.services import tokens_adjust


class DeviceClient:
    """What a booth sends: JSON bodies and `Authorization: Bearer <key>`, through the whole Django stack."""

    def __init__(self, key: str | None):
        self.key = key
        self.http = Client(enforce_csrf_checks=True)  # an API call carries no CSRF token, and needs none

    def headers(self, extra=None) -> dict:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return {**headers, **(extra or {})}

    def get(self, path, *, headers=None):
        return self.http.get(path, headers=self.headers(headers))

    def post(self, path, body=None, *, raw=None, content_type="application/json", headers=None):
        data = raw if raw is not None else ("" if body is None else json.dumps(body))
        return self.http.post(path, data, content_type=content_type, headers=self.headers(headers))

    def usage(self, output_type="ai_image", quantity=1, *, event_id="wedding-2026-06-01", key=None, **extra):
        body = {"output_type": output_type, "quantity": quantity, "event_id": event_id,
                "idempotency_key": key or uuid.uuid4().hex, **extra}
        return self.post("/api/v1/usage", body)

    def start(self, event_id, event_tier="basic", device_id="booth-1"):
        return self.post("/api/v1/events/start", {"event_id": event_id, "event_tier": event_tier,
                                                  "device_id": device_id})

    def stop(self, event_id):
        return self.post(f"/api/v1/events/{event_id}/stop")


@pytest.fixture
def alice_key(alice):
    """(the ApiKey, the plain key) of a key alice created for her account."""
    return api_key_create(account=alice.account, name="Booth 1", created_by=alice)


@pytest.fixture
def alice_device(alice_key) -> DeviceClient:
    return DeviceClient(alice_key[1])


@pytest.fixture
def charlie_device(charlie) -> DeviceClient:
    return DeviceClient(api_key_create(account=charlie.account, name="Charlie's booth", created_by=charlie)[1])


def grant(account, tokens: int) -> None:
    """Tokens for an account, the way an admin grants them."""
    tokens_adjust(account=account, amount=tokens, reason="test grant", user=None)


def ledger(account) -> list[tuple]:
    """Every token ledger entry of the account, oldest first."""
    entries = TokenEntry.objects.filter(account=account).order_by("id")
    return list(entries.values_list("kind", "amount", "balance_after"))


def licenses_of(account, *tiers, user=None, period="monthly"):
    """Buy one license of each tier for the account (with a sandbox card), in this order."""
    if not account.cards.exists():
        add_card(account)
    return [buy_directly(account, user, tier=tier, period=period).licenses.get() for tier in tiers]
