"""Checking that a webhook really comes from Stripe: the one use of the `stripe` SDK outside payments/stripe.py.

Stripe signs each delivery's body with the endpoint's secret (STRIPE_WEBHOOK_SECRET) and the time it
sent it: `Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 of "<t>.<body>">`. A body whose signature
does not match, or that was signed more than 5 minutes ago (a replayed capture), is refused.
"""

import stripe
from django.conf import settings

TOLERANCE_SECONDS = 300


class WebhookRefused(Exception):
    """The body is not a genuine, recent Stripe event (bad or missing signature, stale, malformed)."""


def webhook_event_construct(payload: bytes, signature: str) -> dict:
    """The event Stripe signed, as a plain dict (id, type, created, livemode, data.object…); WebhookRefused if not."""
    try:
        event = stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET,
                                               tolerance=TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as error:
        raise WebhookRefused(f"signature: {error}") from error
    except (ValueError, TypeError, AttributeError) as error:  # not JSON, not UTF-8, not an object
        raise WebhookRefused(f"malformed body: {error}") from error
    event = event.to_dict(for_json=True)
    data = event.get("data")
    if not (isinstance(event.get("id"), str) and event["id"] and isinstance(event.get("type"), str)
            and isinstance(data, dict) and isinstance(data.get("object"), dict)):
        raise WebhookRefused("malformed body: not a Stripe event (id, type, data.object)")
    return event
