"""The device API fuzzed against its own OpenAPI document with schemathesis.

schemathesis reads the API's OpenAPI document and sends each operation, through Django's WSGI app,
generated requests: valid ones, boundary values (lengths of 100 and 101, quantities of 0, 1,
10,000 and 10,001…) and invalid ones (wrong types, missing and unknown fields, NUL bytes, no key).
Every answer must be documented (status, content type, headers, body schema), never a 5xx,
invalid data must be refused, and a refused request must leave the books as they were.
"""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from accounts.api_keys import api_key_create
from billing.openapi import EXAMPLE_EVENT
from licenses.models import EventLease
from licenses.services import event_start
from tests.api.conftest import grant, licenses_of
from tokens.models import TokenEntry, UsageRequest

# Generated requests per operation, on top of schemathesis's boundary and example cases: about six
# seconds for the five operations.
MAX_EXAMPLES = 60
CONFIG = schemathesis.config.SchemathesisConfig.from_dict({
    "generation": {"max-examples": MAX_EXAMPLES},
    # A valid request may still be refused for what it asks: not enough tokens (402), no license of
    # the tier (403), an event not live (404), every license busy or a reused idempotency key (409).
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "402", "403", "404", "409"]}},
})


@pytest.fixture
def connection_kept_open():
    """Django's WSGI handler closes "old" database connections at the start and end of each
    request; in a test that would close the connection holding the test's transaction, so (as
    Django's own test client does) that hook is off for the duration."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzzed_account(prices, alice):
    """Alice's account with a key and every outcome within reach: 100 tokens (enough for some
    usage, not for all), one license of each tier, and the document's example event live (so
    stopping it can succeed)."""
    grant(alice.account, 100)
    licenses_of(alice.account, "basic", "pro", "premium", user=alice)
    event_start(account=alice.account, event_id=EXAMPLE_EVENT, event_tier="basic", device_id="booth-7")
    return alice.account, api_key_create(account=alice.account, name="fuzz", created_by=alice)[1]


def books(account) -> tuple:
    return (list(TokenEntry.objects.filter(account=account).values_list("pk", "amount", "balance_after")),
            UsageRequest.objects.filter(account=account).count(),
            list(EventLease.objects.filter(account=account).values_list("pk", "stopped_at")))


# Loaded when the tests are collected (it reads no database), not from a fixture: schemathesis's
# lazy fixture loader does not run on pytest 9.2.
WSGI_APP = get_wsgi_application()
api = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", WSGI_APP, config=CONFIG)


@api.parametrize()
# The fixtures are set up once per operation, not per example, on purpose: the books are compared
# around each request, and the examples share one account as devices would.
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_api_keeps_to_its_document_and_a_refusal_changes_nothing(case, connection_kept_open, fuzzed_account):
    account, key = fuzzed_account
    before = books(account)

    response = case.call_and_validate(headers={"Authorization": f"Bearer {key}"})

    assert response.status_code < 500
    if not 200 <= response.status_code < 300:
        assert books(account) == before, f"{case.method} {case.formatted_path} answered {response.status_code}"
