"""Device API for usage: spend tokens on outputs (POST /api/v1/usage), auto top-up included."""

from accounts.api_keys import api_key_required
from billing.usage import usage_record
from pictor_billing.api import ApiError, api_view, choice_field, integer_field, json_object, json_response, string_field
from tokens.models import OUTPUT_TYPES
from tokens.services import IdempotencyKeyReused, InsufficientTokens

OUTPUT_TYPE_NAMES = tuple(name for name, _ in OUTPUT_TYPES)
MAX_QUANTITY = 10_000
USAGE_FIELDS = ("output_type", "quantity", "event_id", "idempotency_key")


@api_view("POST")
@api_key_required
def usage_create(request):
    """Debit rate × quantity tokens, once per idempotency key (201; 402 when the balance is short)."""
    body = json_object(request, fields=USAGE_FIELDS)
    try:
        recorded = usage_record(
            account=request.account,
            output_type=choice_field(body, "output_type", OUTPUT_TYPE_NAMES),
            quantity=integer_field(body, "quantity", minimum=1, maximum=MAX_QUANTITY),
            event_id=string_field(body, "event_id"),
            idempotency_key=string_field(body, "idempotency_key"),
        )
    except IdempotencyKeyReused:
        raise ApiError(409, "idempotency_key_reused", "This idempotency_key was used with a different body.") from None
    except InsufficientTokens as short:
        raise ApiError(402, "insufficient_tokens", f"This needs {short.needed} tokens and the balance is "
                                                   f"{short.balance}.", balance=short.balance,
                       needed=short.needed) from None
    return json_response(recorded.body, status=201)
