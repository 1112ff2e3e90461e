"""Webhooks from the emulator itself: localstripe signs and sends its events to the live server's
/stripe/webhook/ as Stripe would; each is checked, stored once and handled (a purchase's payment, which
our books already have, changes nothing)."""

import time
import urllib.parse
import urllib.request
import uuid

import pytest
from django.db import connection

from billing.models import ProcessorEvent
from billing.purchase import license_purchase
from payments.models import PaymentAttempt
from payments.services import card_setup_begin, card_setup_finish
from tests.stripe.conftest import browser_card

pytestmark = pytest.mark.django_db(transaction=True)

if connection.vendor != "postgresql":
    # The emulator sends each event a second after it happens, so the card setup's events reach the live
    # server while this test's purchase writes; on SQLite the two threads share one in-memory connection,
    # and those writes collide ("cannot release savepoint - SQL statements in progress").
    pytest.skip(
        f"the live server's webhooks need a database of their own; the default database is {connection.vendor} "
        "(set DATABASE_URL=postgres://... to run them)", allow_module_level=True)
WAIT = 30  # seconds; localstripe sends each event a second after it happens


def hook_point(localstripe: str, hook: str, url: str, secret: str) -> None:
    form = urllib.parse.urlencode({"url": url, "secret": secret}).encode()
    with urllib.request.urlopen(f"{localstripe}/_config/webhooks/{hook}", data=form, timeout=5) as answer:
        assert answer.status == 200


@pytest.fixture
def webhook_to_live_server(localstripe, live_server, settings):
    """The emulator's webhook, pointed at the live server for this test only.

    The emulator lives for the whole session and cannot forget a webhook: left pointing at the live
    server, the later Stripe tests' events would reach it while they run, and on SQLite the live
    server shares their in-memory database connection. So it is pointed at the discard port after.
    """
    settings.STRIPE_WEBHOOK_SECRET = "whsec_localstripe_test"
    hook = f"pictor-{uuid.uuid4().hex[:8]}"
    hook_point(localstripe, hook, f"{live_server.url}/stripe/webhook/", settings.STRIPE_WEBHOOK_SECRET)
    yield
    hook_point(localstripe, hook, "http://127.0.0.1:9/", settings.STRIPE_WEBHOOK_SECRET)


def test_the_emulators_signed_events_reach_the_webhook_and_are_stored_once(stripe_on, webhook_to_live_server,
                                                                           prices, alice):
    setup = card_setup_begin(account=alice.account)
    card_setup_finish(account=alice.account, setup_ref=browser_card(stripe_on, setup["client_secret"],
                                                                    "4242424242424242"))
    purchase, _ = license_purchase(account=alice.account, user=alice, token=uuid.uuid4().hex, tier="pro",
                                   period="monthly", quantity=1)
    attempt = PaymentAttempt.objects.get(invoice=purchase.invoice)
    deadline = time.monotonic() + WAIT
    while not ProcessorEvent.objects.filter(object_id=attempt.processor_ref, handled_at__isnull=False).exists():
        assert time.monotonic() < deadline, "the emulator's event never reached the webhook"
        time.sleep(0.1)  # polling for a delivery, not timing anything
    event = ProcessorEvent.objects.get(object_id=attempt.processor_ref)
    assert event.type == "payment_intent.succeeded" and event.event_id.startswith("evt_")
    attempt.refresh_from_db()
    assert attempt.status == PaymentAttempt.SUCCEEDED, "our books already had it: nothing changes"
