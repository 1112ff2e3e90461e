"""The device API's OpenAPI 3.1 document, served without a key at /api/v1/openapi.json.

It is built from the same constants the endpoints check against (output types, tiers, limits),
and tests/api/test_fuzz.py fuzzes the API against it, so the two cannot drift apart unnoticed.
"""

from accounts.api_keys import AUTH_CHALLENGE
from billing.api import MAX_QUANTITY, OUTPUT_TYPE_NAMES, USAGE_FIELDS
from licenses.api import START_FIELDS
from pictor_billing import pricing
from pictor_billing.api import IDENTIFIER_PATTERN, MAX_ID_LENGTH, api_view, json_response
from tokens.services import DEFAULT_RATES

JSON = "application/json"


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict, *, required=None, closed: bool = False, **extra) -> dict:
    schema = {"type": "object", "properties": properties, "required": list(required or properties), **extra}
    if closed:
        schema["additionalProperties"] = False
    return schema


def error_schema(codes: list[str], **properties) -> dict:
    return obj({"error": {"type": "string", "enum": codes}, **properties,
                "detail": {"type": "string", "description": "A sentence for the person setting up the device."}})


def answer(description: str, schema: dict, *, headers: dict | None = None) -> dict:
    response = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def error_answer(description: str, name: str, **headers) -> dict:
    return answer(description, ref(name), headers={
        header: {"required": True, "schema": {"type": "string"}, "description": text}
        for header, text in headers.items()} or None)


def json_body(schema_name: str) -> dict:
    return {"required": True, "content": {JSON: {"schema": ref(schema_name)}}}


# The refusals every endpoint with a key can give, and those of every endpoint with a body.
COMMON = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "405": {"$ref": "#/components/responses/MethodNotAllowed"},
}
WITH_BODY = {
    "400": {"$ref": "#/components/responses/InvalidRequest"},
    "413": {"$ref": "#/components/responses/PayloadTooLarge"},
    "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
}

IDENTIFIER = {
    "type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH,
    "pattern": IDENTIFIER_PATTERN,
    "description": f"Chosen by the device: 1 to {MAX_ID_LENGTH} characters, no control characters, "
                   "no spaces at either end.",
}
TIER = {"type": "string", "enum": list(pricing.TIERS),
        "description": "Lowest first: a license runs events of its own tier and every lower one."}
DATE = {"type": "string", "format": "date"}
DATE_TIME = {"type": "string", "format": "date-time"}
RATES = ", ".join(f"{name} {tokens}" for name, tokens in DEFAULT_RATES.items())

EXAMPLE_EVENT = "wedding-2026-06-01"
EXAMPLE_USAGE = {"output_type": "ai_image", "quantity": 2, "event_id": EXAMPLE_EVENT,
                 "idempotency_key": "booth-7-output-000123"}
EXAMPLE_START = {"event_id": EXAMPLE_EVENT, "event_tier": "pro", "device_id": "booth-7"}

LEASE = {
    "event_id": ref("Identifier"), "event_tier": ref("Tier"), "device_id": ref("Identifier"),
    "license_id": {"type": "integer"}, "license_tier": ref("Tier"),
    "paid_until": {**DATE, "description": "The license's paid period ends (and it renews or ends) on this day."},
    "started_at": DATE_TIME,
}

SCHEMAS = {
    "Identifier": IDENTIFIER,
    "Tier": TIER,
    "UsageRequest": obj({
        "output_type": {"type": "string", "enum": list(OUTPUT_TYPE_NAMES),
                        "description": f"What was made. Tokens per output (default rates): {RATES}."},
        "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY,
                     "description": "How many outputs: a whole number (2 or 2.0; 2.5 and true are refused)."},
        "event_id": ref("Identifier"),
        "idempotency_key": {**IDENTIFIER, "description": "One per usage report: the same key again returns "
                                                         "the first answer and debits nothing more."},
    }, required=USAGE_FIELDS, closed=True, examples=[EXAMPLE_USAGE]),
    "Usage": obj({
        "debited": {"type": "integer", "minimum": 0, "description": "rate × quantity, at the rate in force."},
        "balance": {"type": "integer", "minimum": 0, "description": "The balance after this debit."},
        "output_type": {"type": "string", "enum": list(OUTPUT_TYPE_NAMES)},
        "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY},
        "event_id": ref("Identifier"),
        "entry_id": {"type": "integer", "description": "The token ledger entry of this debit."},
    }),
    "EventStartRequest": obj({"event_id": ref("Identifier"), "event_tier": ref("Tier"),
                              "device_id": ref("Identifier")}, required=START_FIELDS, closed=True,
                             examples=[EXAMPLE_START]),
    "Lease": obj(LEASE),
    "StoppedLease": obj({**LEASE, "stopped_at": DATE_TIME}),
    "Balance": obj({"balance": {"type": "integer", "minimum": 0}}),
    "Licenses": obj({"licenses": {"type": "array", "items": obj({
        "license_id": {"type": "integer"},
        "tier": ref("Tier"),
        "runs": {"type": "array", "items": ref("Tier"), "description": "The event tiers it can run."},
        "paid_until": DATE,
        "cancelling": {"type": "boolean", "description": "Cancelled: runs events until paid_until, then ends."},
        "live_event_id": {"oneOf": [ref("Identifier"), {"type": "null"}],
                          "description": "The event it is running now, if any."},
    })}}),
    "Error": error_schema(["unauthorized", "method_not_allowed", "not_found", "payload_too_large",
                           "unsupported_media_type"]),
    "InvalidRequest": error_schema(["invalid_request"], field={
        "type": ["string", "null"],
        "description": "The field at fault; null when the body as a whole is (not JSON, not an object)."}),
    "InsufficientTokens": error_schema(["insufficient_tokens"], balance={"type": "integer", "minimum": 0},
                                       needed={"type": "integer", "minimum": 1}),
    "IdempotencyKeyReused": error_schema(["idempotency_key_reused"]),
    "TierNeeded": error_schema(["license_tier_needed", "all_licenses_busy", "event_live_on_lower_tier"],
                               tier_needed=ref("Tier")),
    "EventNotLive": error_schema(["event_not_live"]),
}

RESPONSES = {
    "Unauthorized": error_answer(
        "No key, a malformed or unknown key, or a revoked one (refused from the moment it is revoked).",
        "Error", **{"WWW-Authenticate": f"Always `{AUTH_CHALLENGE}`."}),
    "MethodNotAllowed": error_answer("This method is not served here.", "Error",
                                     Allow="The methods this path answers."),
    "InvalidRequest": error_answer(
        "The body is not valid: not JSON, not an object, a field missing, unknown, of the wrong type or out "
        "of range. Nothing was changed.", "InvalidRequest"),
    "PayloadTooLarge": error_answer("The body is larger than the server accepts. Nothing was changed.", "Error"),
    "UnsupportedMediaType": error_answer("The body must be sent as `application/json` (UTF-8). "
                                         "Nothing was changed.", "Error"),
}


def operation(summary: str, description: str, responses: dict, *, body: str | None = None,
              parameters: list | None = None) -> dict:
    op = {"summary": summary, "description": description, "responses": {**responses, **COMMON}}
    if body:
        op["requestBody"] = json_body(body)
        op["responses"].update(WITH_BODY)
    if parameters:
        op["parameters"] = parameters
    return op


PATHS = {
    "/api/v1/usage": {"post": operation(
        "Spend tokens on outputs",
        "Debits rate × quantity tokens (the rates in force now) in one transaction. Retries are safe: "
        "the same idempotency_key with the same body returns the first answer and debits nothing more.",
        {"201": answer("Debited (or the first answer again, for a repeated idempotency_key).", ref("Usage")),
         "402": answer("Not enough tokens: nothing was debited. The same key may be retried after a top-up.",
                       ref("InsufficientTokens")),
         "409": answer("This idempotency_key was already used with a different body; nothing was debited.",
                       ref("IdempotencyKeyReused"))},
        body="UsageRequest")},
    "/api/v1/events/start": {"post": operation(
        "Start a live event",
        "Leases the lowest-tier free license that can run the event (a tier runs its own events and lower "
        "ones). One license runs one live event at a time. A cancelled license still runs events until its "
        "paid period ends.",
        {"201": answer("A license was leased to the event.", ref("Lease")),
         "200": answer("The event was already live: its lease, unchanged.", ref("Lease")),
         "403": answer("The account has no active license of this tier or higher (`license_tier_needed`).",
                       ref("TierNeeded")),
         "409": answer("Every license that could run the event is running another one "
                       "(`all_licenses_busy`), or the event is already live on a lower-tier license "
                       "(`event_live_on_lower_tier`).", ref("TierNeeded"))},
        body="EventStartRequest")},
    "/api/v1/events/{event_id}/stop": {"post": operation(
        "Stop a live event",
        "Ends the event's lease and frees its license. No body is read.",
        {"200": answer("The lease, now stopped.", ref("StoppedLease")),
         "400": {"$ref": "#/components/responses/InvalidRequest"},
         "404": answer("No live event with this id.", ref("EventNotLive"))},
        parameters=[{"name": "event_id", "in": "path", "required": True, "schema": ref("Identifier"),
                     "example": EXAMPLE_EVENT,
                     "description": "As sent to /api/v1/events/start, percent-encoded (a slash as %2F)."}])},
    "/api/v1/balance": {"get": operation(
        "Token balance", "The account's token balance (the sum of its token ledger).",
        {"200": answer("The balance.", ref("Balance"))})},
    "/api/v1/licenses": {"get": operation(
        "Licenses a device may start events on",
        "The account's active licenses (cancelling ones included until their paid period ends), with the "
        "event tiers each can run and the event it is running now.",
        {"200": answer("The active licenses, oldest first.", ref("Licenses"))})},
}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "Pictor device API",
        "version": "1",
        "description": "For booths and the event runtime: spend tokens on outputs, lease licenses to live "
                       "events. Account owners create and revoke API keys in the Billing area; each key acts "
                       "for its own account only. Every answer, refusals included, is JSON; a refusal has "
                       "`error` (a code) and `detail` (a sentence).",
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "responses": RESPONSES,
        "securitySchemes": {"deviceKey": {
            "type": "http", "scheme": "bearer", "bearerFormat": "pbk_<prefix>_<secret>",
            "description": "An API key from Billing › Device API keys, sent as `Authorization: Bearer <key>`.",
        }},
    },
    "security": [{"deviceKey": []}],
}


@api_view("GET")
def openapi_document(request):
    """The OpenAPI document (no key needed: it holds no account's data)."""
    return json_response(DOCUMENT, headers={"Cache-Control": "public, max-age=300"})
