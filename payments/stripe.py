"""The Stripe gateway: the only module that talks to Stripe's API (the webhook signature check aside).

Cards are entered in Stripe.js's card Element and saved through a SetupIntent (`usage=off_session`):
the number goes from the browser to Stripe, never to our server; we keep the PaymentMethod's id,
brand, last four and expiry. A card's `gateway_ref` is "cus_…/pm_…" (its customer and payment
method), so a charge needs no extra call to find the customer.

Charges are PaymentIntents confirmed at once with the card: `authorize` holds the amount
(`capture_method=manual`), `charge` takes it. The attempt's key is Stripe's Idempotency-Key and the
attempt id rides in `metadata`, so reconciliation can find a payment whose answer was lost. Declines
are plain words; `requires_action` on-session is "confirm your payment" (3-D Secure with
`stripe.confirmCardPayment` in the browser); off-session it is a failure, as Stripe answers it (402
`authentication_required`). Network errors and Stripe's 5xx raise ProcessorUnavailable (the outcome
is unknown, never guessed); rate limits are retried with backoff first.

`STRIPE_API_BASE` points it at an emulator (localstripe in the tests). Where localstripe differs from
Stripe, this module follows Stripe's documented behaviour (README, "Stripe").
"""

import logging
import time

import stripe
from django.conf import settings

from payments.gateway import (
    AUTHORIZED,
    CANCELLED,
    FAILED,
    REFUNDED,
    REQUIRES_ACTION,
    SUCCEEDED,
    CardError,
    PaymentOutcome,
    ProcessorUnavailable,
    SavedCard,
)

log = logging.getLogger(__name__)

# Stripe's decline codes, in the words the owner reads.
DECLINE_WORDS = {
    "card_declined": "Your card was declined.",
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "The card's security code is incorrect.",
    "incorrect_number": "The card number is incorrect.",
    "processing_error": "The card could not be processed. Try again or use another card.",
    "authentication_required": "Your bank requires authentication for this payment (authentication required).",
    "payment_intent_authentication_failure": "The payment was not confirmed with your bank.",
}
RATE_LIMIT_WAITS = (0.5, 1.0, 2.0)  # seconds between tries when Stripe says "too many requests"
STATUSES = {"requires_capture": AUTHORIZED, "succeeded": SUCCEEDED, "requires_action": REQUIRES_ACTION,
            "canceled": CANCELLED, "requires_payment_method": FAILED}
BRANDS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "Amex", "discover": "Discover"}


def card_ref(customer: str, payment_method: str) -> str:
    return f"{customer}/{payment_method}"


def _parts(ref: str) -> tuple[str, str]:
    customer, _, payment_method = ref.partition("/")
    if not customer.startswith("cus_") or not payment_method:
        raise CardError("This card was not saved with Stripe; add it again.")
    return customer, payment_method


def _words(code: str | None, message: str | None = None) -> str:
    return DECLINE_WORDS.get(code or "", "") or (message or "Your card was declined.")


class StripeGateway:
    """Stripe behind Pictor's CardGateway interface (payments.gateway)."""

    name = "stripe"
    collects_card_in_browser = True
    rate_limit_waits = RATE_LIMIT_WAITS

    def __init__(self):
        base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
        self.client = stripe.StripeClient(settings.STRIPE_SECRET_KEY, base_addresses=base, max_network_retries=0)

    # --- calling Stripe --------------------------------------------------------------------------

    def _call(self, method, *args, **kwargs):
        """One API call; rate limits retried with backoff, no answer -> ProcessorUnavailable."""
        for wait in (*self.rate_limit_waits, None):
            try:
                return method(*args, **kwargs)
            except stripe.RateLimitError as error:
                if wait is None:
                    raise ProcessorUnavailable(f"Stripe rate limit: {error}") from error
                time.sleep(wait)  # Stripe asks callers to back off; a test never reaches this
            except (stripe.APIConnectionError, stripe.AuthenticationError) as error:
                raise ProcessorUnavailable(f"Stripe did not answer: {error}") from error
            except stripe.APIError as error:  # Stripe's own 5xx
                raise ProcessorUnavailable(f"Stripe error {error.http_status}: {error}") from error
        raise AssertionError("unreachable")

    # --- customers and cards ----------------------------------------------------------------------

    def customer_create(self, *, account_id: int, email: str, name: str) -> str:
        """A Stripe customer for one account (created on its first card); its id."""
        customer = self._call(self.client.v1.customers.create,
                              params={"email": email, "name": name, "metadata": {"account_id": str(account_id)}},
                              options={"idempotency_key": f"customer:{account_id}"})
        return customer.id

    def card_setup_begin(self, *, customer_ref: str) -> dict:
        """A SetupIntent for the card Element to confirm in the browser: its id and client secret."""
        intent = self._call(self.client.v1.setup_intents.create,
                            params={"customer": customer_ref, "usage": "off_session", "payment_method_types": ["card"]})
        return {"id": intent.id, "client_secret": intent.client_secret}

    def card_setup_finish(self, *, customer_ref: str, setup_intent_id: str) -> SavedCard:
        """The card a SetupIntent of this customer saved (after Stripe.js confirmed it); CardError if it did not."""
        try:
            intent = self._call(self.client.v1.setup_intents.retrieve, setup_intent_id)
        except stripe.InvalidRequestError as error:
            raise CardError("That card setup is unknown; add the card again.") from error
        if intent.customer != customer_ref:
            raise CardError("That card setup belongs to someone else.")
        if intent.status != "succeeded" or not intent.payment_method:
            error = getattr(intent, "last_setup_error", None) or {}
            raise CardError(_words(error.get("code") if error else None, "The card was not saved."))
        payment_method = intent.payment_method if isinstance(intent.payment_method, str) else intent.payment_method.id
        method = self._call(self.client.v1.payment_methods.retrieve, payment_method)
        if getattr(method, "customer", None) != customer_ref:
            # Stripe attaches it when the SetupIntent succeeds; an emulator may not.
            try:
                method = self._call(self.client.v1.payment_methods.attach, payment_method,
                                    params={"customer": customer_ref})
            except stripe.CardError as error:
                raise CardError(_words(error.code, error.user_message)) from error
        card = method.card
        return SavedCard(card_ref(customer_ref, payment_method), BRANDS.get(card.brand, (card.brand or "Card").title()),
                         card.last4, int(card.exp_month), int(card.exp_year))

    def card_default_set(self, *, card_ref: str) -> None:
        customer, payment_method = _parts(card_ref)
        self._call(self.client.v1.customers.update, customer,
                   params={"invoice_settings": {"default_payment_method": payment_method}})

    def card_detach(self, *, card_ref: str) -> None:
        _, payment_method = _parts(card_ref)
        try:
            self._call(self.client.v1.payment_methods.detach, payment_method)
        except stripe.InvalidRequestError:
            log.info("payment method %s was already detached", payment_method)

    def save_card(self, **_) -> SavedCard:
        raise CardError("With Stripe, cards are entered in the secure card form.")

    # --- payments ---------------------------------------------------------------------------------

    def _intent(self, *, card_ref: str, amount_cents: int, idempotency_key: str, description: str, attempt_id: int,
                off_session: bool, capture: str) -> PaymentOutcome:
        customer, payment_method = _parts(card_ref)
        params = {"amount": amount_cents, "currency": "usd", "customer": customer, "payment_method": payment_method,
                  "confirm": True, "capture_method": capture,
                  # localstripe refuses `description`; the metadata carries it on Stripe and the emulator alike.
                  "metadata": {"attempt_id": str(attempt_id), "description": description[:400]}}
        if off_session:
            params["off_session"] = True
        try:
            intent = self._call(self.client.v1.payment_intents.create, params=params,
                                options={"idempotency_key": idempotency_key})
        except stripe.CardError as error:
            failed = (error.json_body or {}).get("error", {})
            intent_id = (failed.get("payment_intent") or {}).get("id", "")
            code = failed.get("decline_code") or error.code
            return PaymentOutcome(FAILED, intent_id, amount_cents, decline_code=code or "card_declined",
                                  message=_words(code, error.user_message), answer={"error": failed})
        except stripe.InvalidRequestError as error:
            # Refused before any money moved (a detached card, a bad parameter): a definite no.
            return PaymentOutcome(FAILED, "", amount_cents, decline_code="invalid_request",
                                  message="The payment could not be made with this card. Nothing was charged.",
                                  answer={"error": str(error)[:300]})
        outcome = self._outcome(intent)
        if off_session and outcome.status == REQUIRES_ACTION:
            # Stripe answers an off-session payment that needs authentication with a 402; an emulator
            # may leave it waiting instead. Either way nothing is taken: release it and say why.
            self._call(self.client.v1.payment_intents.cancel, intent.id)
            return PaymentOutcome(FAILED, intent.id, amount_cents, decline_code="authentication_required",
                                  message=DECLINE_WORDS["authentication_required"], answer={"id": intent.id})
        return outcome

    def _outcome(self, intent, *, amount_refunded: int | None = None) -> PaymentOutcome:
        status = STATUSES.get(intent.status)
        if status is None:  # processing: the answer is not known yet
            raise ProcessorUnavailable(f"payment {intent.id} is {intent.status}")
        error = getattr(intent, "last_payment_error", None) or {}
        code = (error.get("decline_code") or error.get("code")) if error else ""
        charge = getattr(intent, "latest_charge", None)
        refunded = amount_refunded if amount_refunded is not None else (
            getattr(charge, "amount_refunded", 0) if charge is not None and not isinstance(charge, str) else 0)
        if status == SUCCEEDED and refunded and refunded >= intent.amount:
            status = REFUNDED
        answer = {"id": intent.id, "status": intent.status, "amount": intent.amount}
        if status == REQUIRES_ACTION:
            answer["client_secret"] = intent.client_secret  # for stripe.confirmCardPayment on the confirm page
        return PaymentOutcome(status, intent.id, intent.amount, refunded or 0, code or "",
                              _words(code, error.get("message") if error else None) if status == FAILED else "",
                              answer)

    def authorize(self, *, card_ref: str, amount_cents: int, idempotency_key: str, description: str,
                  attempt_id: int, off_session: bool) -> PaymentOutcome:
        return self._intent(card_ref=card_ref, amount_cents=amount_cents, idempotency_key=idempotency_key,
                            description=description, attempt_id=attempt_id, off_session=off_session, capture="manual")

    def charge(self, *, card_ref: str, amount_cents: int, idempotency_key: str, description: str,
               attempt_id: int, off_session: bool) -> PaymentOutcome:
        return self._intent(card_ref=card_ref, amount_cents=amount_cents, idempotency_key=idempotency_key,
                            description=description, attempt_id=attempt_id, off_session=off_session,
                            capture="automatic")

    def _move(self, method, processor_ref: str, idempotency_key: str) -> PaymentOutcome:
        try:
            intent = self._call(method, processor_ref, options={"idempotency_key": idempotency_key})
        except stripe.InvalidRequestError:
            # Already captured or released (a retried step): say how it stands now.
            intent = self._call(self.client.v1.payment_intents.retrieve, processor_ref)
        return self._outcome(intent)

    def capture(self, *, processor_ref: str, idempotency_key: str) -> PaymentOutcome:
        return self._move(self.client.v1.payment_intents.capture, processor_ref, idempotency_key)

    def cancel(self, *, processor_ref: str, idempotency_key: str) -> PaymentOutcome:
        return self._move(self.client.v1.payment_intents.cancel, processor_ref, idempotency_key)

    def refund(self, *, processor_ref: str, amount_cents: int, idempotency_key: str,
               attempt_id: int) -> PaymentOutcome:
        try:
            refund = self._call(self.client.v1.refunds.create,
                                params={"payment_intent": processor_ref, "amount": amount_cents,
                                        "metadata": {"attempt_id": str(attempt_id)}},
                                options={"idempotency_key": idempotency_key})
        except stripe.InvalidRequestError as error:
            return PaymentOutcome(FAILED, processor_ref, amount_cents, decline_code="refund_refused",
                                  message="This payment cannot be refunded by that amount.",
                                  answer={"error": str(error)[:300]})
        if refund.status in ("failed", "canceled"):
            return PaymentOutcome(FAILED, refund.id, amount_cents, decline_code="refund_failed",
                                  message="The refund failed.", answer={"id": refund.id, "status": refund.status})
        # succeeded, or pending (Stripe settles it later and says so by charge.refund.updated).
        return PaymentOutcome(REFUNDED, refund.id, amount_cents, answer={"id": refund.id, "status": refund.status,
                                                                         "refund_of": processor_ref})

    def lookup(self, *, processor_ref: str = "", attempt_id: int | None = None) -> PaymentOutcome | None:
        if not processor_ref and attempt_id is not None:
            try:
                found = self._call(self.client.v1.payment_intents.search,
                                   params={"query": f"metadata['attempt_id']:'{int(attempt_id)}'"})
            except stripe.InvalidRequestError:
                # localstripe cannot search; Stripe can (README, "Stripe").
                log.warning("attempt %s: the processor cannot search payments by metadata", attempt_id)
                return None
            if not found.data:
                return None
            processor_ref = found.data[0].id
        if not processor_ref:
            return None
        try:
            intent = self._call(self.client.v1.payment_intents.retrieve, processor_ref)
        except stripe.InvalidRequestError:
            return None
        charge = intent.latest_charge
        refunded = None
        if isinstance(charge, str):
            refunded = self._call(self.client.v1.charges.retrieve, charge).amount_refunded
        return self._outcome(intent, amount_refunded=refunded)
