"""The device API's plumbing: key authentication, JSON bodies checked field by field, JSON errors.

Every answer is JSON, refusals included: a device never has to parse an HTML error page.
Key authentication (`accounts.api_keys.api_key_required`) builds on it.
A refusal names what was wrong, e.g. 400 `{"error": "invalid_request", "field": "quantity",
"detail": "..."}`; `field` is null when the body as a whole is at fault (not JSON, not an object).
billing/openapi.py describes the same rules; tests/api/test_fuzz.py holds the two together.
"""

import json
import re
from functools import wraps

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

MAX_ID_LENGTH = 100  # event_id, device_id and idempotency_key: the columns they are stored in
# Control characters in an id are a device bug, and PostgreSQL refuses NUL in text outright.
# One pattern for the code and the OpenAPI document: no control characters (C0, DEL, C1) and no
# space at either end. \ufeff is named because JSON Schema's \s has it and Python's does not.
IDENTIFIER_PATTERN = r"^[^\s\ufeff\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\ufeff\x00-\x1f\x7f-\x9f])?$"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class ApiError(Exception):
    """A refusal, answered as JSON: `{"error": code, "detail": ..., **extra}` with this status."""

    def __init__(self, status: int, error: str, detail: str, *, headers: dict | None = None, **extra):
        super().__init__(detail)
        self.status, self.headers = status, headers or {}
        self.body = {"error": error, **extra, "detail": detail}

    def response(self) -> JsonResponse:
        return json_response(self.body, status=self.status, headers=self.headers)


def json_response(body: dict, *, status: int = 200, headers: dict | None = None) -> JsonResponse:
    # Balances and leases change from one request to the next: never cached, unless the caller says so.
    return JsonResponse(body, status=status, headers={"Cache-Control": "no-store", **(headers or {})})


def invalid(field: str | None, detail: str) -> ApiError:
    return ApiError(400, "invalid_request", detail, field=field)


def api_view(*methods: str):
    """A JSON endpoint answering these methods (405 otherwise); no CSRF, as no cookie is ever read.

    Turns an ApiError raised anywhere below into its JSON answer.
    """

    def decorator(view):
        @csrf_exempt
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                return ApiError(405, "method_not_allowed", f"Use {' or '.join(methods)}.",
                                headers={"Allow": ", ".join(methods)}).response()
            try:
                return view(request, *args, **kwargs)
            except ApiError as refused:
                return refused.response()

        return wrapper

    return decorator


def json_object(request, *, fields: tuple[str, ...]) -> dict:
    """The request body: a JSON object with no field but these (in which order it is checked)."""
    media_type = request.content_type.strip().lower()
    charset = (request.content_params or {}).get("charset", "utf-8").strip().lower()
    if media_type != "application/json" or charset not in {"utf-8", "utf8"}:
        raise ApiError(415, "unsupported_media_type", "Send the body as JSON: 'Content-Type: application/json'.")
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ApiError(413, "payload_too_large", "The body is too large.") from None
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        # ValueError covers bad syntax, NaN/Infinity and integers too long to read.
        raise invalid(None, "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise invalid(None, "The body must be a JSON object.")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise invalid(unknown[0][:MAX_ID_LENGTH], f"Unknown field {unknown[0][:MAX_ID_LENGTH]!r}; "
                                                  f"the fields are {', '.join(fields)}.")
    return body


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def _required(body: dict, name: str):
    if name not in body or body[name] is None:
        raise invalid(name, f"{name} is required.")
    return body[name]


def identifier(value, name: str) -> str:
    """An id chosen by the device: 1 to 100 characters, no control characters, no surrounding spaces."""
    if not isinstance(value, str):
        raise invalid(name, f"{name} must be a string.")
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise invalid(name, f"{name} must be 1 to {MAX_ID_LENGTH} characters long.")
    if CONTROL_CHARACTERS.search(value) or not _is_encodable(value):
        raise invalid(name, f"{name} must be valid text without control characters.")
    if value != value.strip() or value[0] == "\ufeff" or value[-1] == "\ufeff":
        # "e1" and "e1 " would otherwise be two events, and " " a key.
        raise invalid(name, f"{name} must not start or end with spaces.")
    return value


def _is_encodable(value: str) -> bool:
    # JSON can spell a lone surrogate ("\ud800"), which no database can store as text.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def string_field(body: dict, name: str) -> str:
    return identifier(_required(body, name), name)


def choice_field(body: dict, name: str, choices) -> str:
    value = _required(body, name)
    if not isinstance(value, str) or value not in choices:
        raise invalid(name, f"{name} must be one of: {', '.join(choices)}.")
    return value


def integer_field(body: dict, name: str, *, minimum: int, maximum: int) -> int:
    """A whole number in range, as JSON Schema's `integer` has it: 326 and 326.0 (and 3.26e2) are the
    same number and both accepted, as an int; 326.5, true, "326" and out-of-range values are refused."""
    value = _required(body, name)
    # bool is an int in Python, but true is no number in JSON. A float read from the body is exact
    # for every whole number in range (they are far below 2**53), so int() of it loses nothing.
    if isinstance(value, float) and value.is_integer() and minimum <= value <= maximum:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise invalid(name, f"{name} must be a whole number from {minimum} to {maximum:,}.")
    return value


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Any other path under /api/: a JSON 404, like every other API answer."""
    return ApiError(404, "not_found", "No such API endpoint; see /api/v1/openapi.json.").response()
