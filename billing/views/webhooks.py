"""The processor's webhook: `POST /stripe/webhook/`, signed by Stripe, no login and no CSRF token.

A body that is not a genuine, recent Stripe event is a 400 and nothing is stored. Every genuine
event is a 200 once stored and handled (a replay, or a type Pictor does not handle, too); if
handling it fails it is a 500, and Stripe delivers it again.
"""

import logging

from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.webhooks import HandlingFailed, event_receive
from payments.stripe_webhooks import WebhookRefused, webhook_event_construct

log = logging.getLogger(__name__)


@csrf_exempt
@login_not_required
@require_POST
def stripe_webhook(request):
    try:
        event = webhook_event_construct(request.body, request.headers.get("Stripe-Signature", ""))
    except WebhookRefused as refused:
        log.warning("stripe webhook refused: %s", refused)
        return HttpResponseBadRequest("Not a valid Stripe event.", content_type="text/plain")
    try:
        stored = event_receive(event)
    except HandlingFailed:
        return HttpResponse("Not handled; deliver it again.", status=500, content_type="text/plain")
    return JsonResponse({"received": stored.event_id, "outcome": stored.outcome})
