"""Device API for tokens: read the balance (spending them is billing.api's usage endpoint)."""

from accounts.api_keys import api_key_required
from pictor_billing.api import api_view, json_response
from tokens.services import token_balance


@api_view("GET")
@api_key_required
def balance(request):
    """The account's token balance."""
    return json_response({"balance": token_balance(request.account)})
