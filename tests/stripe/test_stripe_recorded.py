"""Where localstripe differs from Stripe, the gateway follows Stripe: recorded answers of Stripe's real
API (their documented shapes), replayed by a small HTTP server on loopback that the gateway calls as it
would call api.stripe.com.

- An off-session payment that needs authentication: Stripe answers 402 `authentication_required`
  (localstripe answers 200 `requires_action`): the attempt fails with plain words, no hold is left.
- Stripe's 5xx and a closed connection: the outcome is unknown, never "failed".
- 429 rate limits: retried with backoff, then answered.
- Looking a payment up by the attempt id it carries (Stripe's search; localstripe cannot search).
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from payments.gateway import AUTHORIZED, FAILED, ProcessorUnavailable
from payments.stripe import StripeGateway

INTENT = {"id": "pi_3Recorded", "object": "payment_intent", "amount": 9900, "currency": "usd",
          "status": "requires_capture", "capture_method": "manual", "client_secret": "pi_3Recorded_secret_x",
          "latest_charge": "ch_3Recorded", "last_payment_error": None, "metadata": {"attempt_id": "7"}}
# Stripe's answer to an off-session confirmation of a card that needs authentication (docs: "Handle
# off-session authentication failures"; error type card_error, HTTP 402).
AUTHENTICATION_REQUIRED = {"error": {
    "type": "card_error", "code": "authentication_required", "decline_code": "authentication_required",
    "message": "Your card was declined. This transaction requires authentication.",
    "payment_intent": {**INTENT, "status": "requires_payment_method", "latest_charge": None,
                       "last_payment_error": {"code": "authentication_required",
                                              "decline_code": "authentication_required"}}}}
SERVER_ERROR = {"error": {"type": "api_error", "message": "An unknown error occurred"}}
RATE_LIMITED = {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"}}


class Replay(BaseHTTPRequestHandler):
    answers: list = []  # (status, body) for each request in turn
    seen: list = []

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append((self.command, self.path, self.rfile.read(length).decode(),
                          self.headers.get("Idempotency-Key")))
        status, body = self.answers.pop(0)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def recorded(settings):
    """A replaying server; set `answers` before the call. The gateway with no backoff wait."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Replay.answers, Replay.seen = [], []
    settings.STRIPE_SECRET_KEY = "sk_test_recorded"
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{server.server_port}"
    gateway = StripeGateway()
    gateway.rate_limit_waits = (0, 0, 0)
    try:
        yield gateway
    finally:
        server.shutdown()
        server.server_close()


def authorize(gateway, **extra):
    return gateway.authorize(card_ref="cus_Recorded/pm_Recorded", amount_cents=9900, idempotency_key="purchase:t:1",
                             description="1 Pro license, monthly", attempt_id=7, off_session=extra.get("off", False))


def test_stripes_402_for_authentication_off_session_is_a_plain_failure(recorded):
    Replay.answers = [(402, AUTHENTICATION_REQUIRED)]
    outcome = authorize(recorded, off=True)
    assert (outcome.status, outcome.processor_ref, outcome.decline_code) == (FAILED, "pi_3Recorded",
                                                                              "authentication_required")
    assert "authentication required" in outcome.message
    method, path, body, key = Replay.seen[0]
    assert (method, path, key) == ("POST", "/v1/payment_intents", "purchase:t:1")
    assert "off_session=true" in body and "metadata[attempt_id]=7" in body and "capture_method=manual" in body


@pytest.mark.parametrize("answer", [(500, SERVER_ERROR), (503, SERVER_ERROR)])
def test_stripes_5xx_leaves_the_outcome_unknown(recorded, answer):
    Replay.answers = [answer]
    with pytest.raises(ProcessorUnavailable):
        authorize(recorded)


def test_rate_limits_are_retried_then_answered(recorded):
    Replay.answers = [(429, RATE_LIMITED), (429, RATE_LIMITED), (200, INTENT)]
    outcome = authorize(recorded)
    assert outcome.status == AUTHORIZED and len(Replay.seen) == 3
    assert {key for *_, key in Replay.seen} == {"purchase:t:1"}, "every try carries the same key"


def test_rate_limited_beyond_the_retries_is_unknown(recorded):
    Replay.answers = [(429, RATE_LIMITED)] * 4
    with pytest.raises(ProcessorUnavailable):
        authorize(recorded)


def test_a_lost_answer_is_found_by_the_attempt_id_it_carries(recorded):
    Replay.answers = [(200, {"object": "search_result", "data": [INTENT], "has_more": False}),
                      (200, INTENT), (200, {"id": "ch_3Recorded", "object": "charge", "amount_refunded": 0})]
    outcome = recorded.lookup(attempt_id=7)
    assert (outcome.status, outcome.processor_ref) == (AUTHORIZED, "pi_3Recorded")
    assert Replay.seen[0][1].startswith("/v1/payment_intents/search?query=metadata")
