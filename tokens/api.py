"""Device API for tokens: spend them on outputs (POST /api/v1/usage) and read the balance."""

from pictor_billing.api import (
    api_key_required,
    api_view,
    choice_field,
    integer_field,
    json_object,
    json_response,
    string_field,
)
from tokens.models import OUTPUT_TYPES
from tokens.services import token_balance, tokens_spend

OUTPUT_TYPE_NAMES = tuple(name for name, _ in OUTPUT_TYPES)
MAX_QUANTITY = 10_000
USAGE_FIELDS = ("output_type", "quantity", "event_id", "idempotency_key")


@api_view("POST")
@api_key_required
def usage_create(request):
    """Debit rate × quantity tokens, once per idempotency key (201; 402 when the balance is short)."""
    body = json_object(request, fields=USAGE_FIELDS)
    result = tokens_spend(
        account=request.account,
        output_type=choice_field(body, "output_type", OUTPUT_TYPE_NAMES),
        quantity=integer_field(body, "quantity", minimum=1, maximum=MAX_QUANTITY),
        event_id=string_field(body, "event_id"),
        idempotency_key=string_field(body, "idempotency_key"),
    )
    return json_response(result.body, status=result.status)


@api_view("GET")
@api_key_required
def balance(request):
    """The account's token balance."""
    return json_response({"balance": token_balance(request.account)})
