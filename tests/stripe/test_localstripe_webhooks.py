"""Webhooks from the emulator itself: localstripe signs and sends its events to the live server's
/stripe/webhook/ as Stripe would; each is checked, stored once and handled (a purchase's payment, which
our books already have, changes nothing)."""

import time
import urllib.parse
import urllib.request
import uuid

import pytest

from billing.models import ProcessorEvent
from billing.purchase import license_purchase
from payments.models import PaymentAttempt
from payments.services import card_setup_begin, card_setup_finish
from tests.stripe.conftest import browser_card

pytestmark = pytest.mark.django_db(transaction=True)
WAIT = 30  # seconds; localstripe sends each event a second after it happens


def test_the_emulators_signed_events_reach_the_webhook_and_are_stored_once(stripe_on, settings, live_server,
                                                                           localstripe, prices, alice):
    settings.STRIPE_WEBHOOK_SECRET = "whsec_localstripe_test"
    hook = f"pictor-{uuid.uuid4().hex[:8]}"
    form = urllib.parse.urlencode({"url": f"{live_server.url}/stripe/webhook/",
                                   "secret": settings.STRIPE_WEBHOOK_SECRET}).encode()
    with urllib.request.urlopen(f"{localstripe}/_config/webhooks/{hook}", data=form, timeout=5) as answer:
        assert answer.status == 200
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
