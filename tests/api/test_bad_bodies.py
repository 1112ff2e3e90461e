"""Bad requests get a JSON refusal naming what is wrong, change nothing, and never a 500."""

import json

import pytest

from licenses.models import EventLease
from tests.api.conftest import grant, ledger, licenses_of
from tokens.models import UsageRequest

GOOD_USAGE = {"output_type": "ai_image", "quantity": 1, "event_id": "wedding", "idempotency_key": "k-1"}
GOOD_START = {"event_id": "wedding", "event_tier": "basic", "device_id": "booth-1"}


def without(body: dict, field: str) -> dict:
    return {name: value for name, value in body.items() if name != field}


BAD_USAGE = [
    ("unknown output type", {**GOOD_USAGE, "output_type": "hologram"}, "output_type"),
    ("output type in capitals", {**GOOD_USAGE, "output_type": "AI_IMAGE"}, "output_type"),
    ("output type not a string", {**GOOD_USAGE, "output_type": 4}, "output_type"),
    ("quantity zero", {**GOOD_USAGE, "quantity": 0}, "quantity"),
    ("quantity negative", {**GOOD_USAGE, "quantity": -5}, "quantity"),
    ("quantity above 10,000", {**GOOD_USAGE, "quantity": 10_001}, "quantity"),
    ("quantity a fraction", {**GOOD_USAGE, "quantity": 1.5}, "quantity"),
    ("quantity a fraction just above a whole number", {**GOOD_USAGE, "quantity": 326.5}, "quantity"),
    ("quantity a whole float above 10,000", {**GOOD_USAGE, "quantity": 10_001.0}, "quantity"),
    ("quantity a whole float of zero", {**GOOD_USAGE, "quantity": 0.0}, "quantity"),
    ("quantity a float too large for any count", {**GOOD_USAGE, "quantity": 1e300}, "quantity"),
    ("quantity a boolean", {**GOOD_USAGE, "quantity": True}, "quantity"),
    ("quantity a string", {**GOOD_USAGE, "quantity": "1"}, "quantity"),
    ("quantity null", {**GOOD_USAGE, "quantity": None}, "quantity"),
    ("quantity an object", {**GOOD_USAGE, "quantity": {"n": 1}}, "quantity"),
    ("quantity huge", {**GOOD_USAGE, "quantity": 10**30}, "quantity"),
    ("output type missing", without(GOOD_USAGE, "output_type"), "output_type"),
    ("quantity missing", without(GOOD_USAGE, "quantity"), "quantity"),
    ("event id missing", without(GOOD_USAGE, "event_id"), "event_id"),
    ("idempotency key missing", without(GOOD_USAGE, "idempotency_key"), "idempotency_key"),
    ("event id empty", {**GOOD_USAGE, "event_id": ""}, "event_id"),
    ("event id too long", {**GOOD_USAGE, "event_id": "e" * 101}, "event_id"),
    ("event id a number", {**GOOD_USAGE, "event_id": 42}, "event_id"),
    ("event id with a NUL", {**GOOD_USAGE, "event_id": "wed\x00ding"}, "event_id"),
    ("event id with a newline", {**GOOD_USAGE, "event_id": "wed\nding"}, "event_id"),
    ("idempotency key too long", {**GOOD_USAGE, "idempotency_key": "k" * 101}, "idempotency_key"),
    ("idempotency key a list", {**GOOD_USAGE, "idempotency_key": ["k"]}, "idempotency_key"),
    ("an unknown field", {**GOOD_USAGE, "price": 0}, "price"),
]

BAD_START = [
    ("unknown tier", {**GOOD_START, "event_tier": "platinum"}, "event_tier"),
    ("tier by its label", {**GOOD_START, "event_tier": "Basic"}, "event_tier"),
    ("tier missing", without(GOOD_START, "event_tier"), "event_tier"),
    ("event id missing", without(GOOD_START, "event_id"), "event_id"),
    ("device id missing", without(GOOD_START, "device_id"), "device_id"),
    ("event id too long", {**GOOD_START, "event_id": "e" * 101}, "event_id"),
    ("device id too long", {**GOOD_START, "device_id": "d" * 101}, "device_id"),
    ("device id not a string", {**GOOD_START, "device_id": 7}, "device_id"),
    ("an unknown field", {**GOOD_START, "license_id": 1}, "license_id"),
]

NOT_AN_OBJECT = [
    ("not JSON", "output_type=ai_image&quantity=1"),
    ("truncated JSON", '{"output_type": "ai_image", "quantity": 1'),
    ("only whitespace", "  \n "),
    ("a JSON list", json.dumps([GOOD_USAGE])),
    ("a JSON string", '"ai_image"'),
    ("a JSON number", "1"),
    ("JSON null", "null"),
    ("NaN is not JSON", '{"output_type": "ai_image", "quantity": NaN, "event_id": "e", "idempotency_key": "k"}'),
    ("Infinity is not JSON", '{"quantity": Infinity}'),
    ("an integer too long to read", '{"quantity": ' + "9" * 5000 + "}"),
    ("nesting deeper than any parser allows", "[" * 100_000 + "]" * 100_000),
    ("not UTF-8", b'{"event_id": "caf\xe9"}'),
]


@pytest.fixture
def funded(alice):
    grant(alice.account, 100)
    return alice.account


def assert_invalid(response, field):
    assert response.status_code == 400, response.content[:200]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["field"] == field
    assert body["detail"]


@pytest.mark.parametrize(("case", "body", "field"), BAD_USAGE, ids=[case for case, _, _ in BAD_USAGE])
def test_a_bad_usage_body_is_400_naming_the_field_and_debits_nothing(funded, alice_device, case, body, field):
    before = ledger(funded)
    assert_invalid(alice_device.post("/api/v1/usage", body), field)
    assert ledger(funded) == before
    assert not UsageRequest.objects.exists()


@pytest.mark.parametrize(("case", "body", "field"), BAD_START, ids=[case for case, _, _ in BAD_START])
def test_a_bad_event_start_body_is_400_naming_the_field_and_leases_nothing(prices, alice, alice_device, case, body,
                                                                           field):
    licenses_of(alice.account, "premium", user=alice)
    assert_invalid(alice_device.post("/api/v1/events/start", body), field)
    assert not EventLease.objects.exists()


@pytest.mark.parametrize("path", ["/api/v1/usage", "/api/v1/events/start"])
@pytest.mark.parametrize(("case", "raw"), NOT_AN_OBJECT, ids=[case for case, _ in NOT_AN_OBJECT])
def test_a_body_that_is_not_a_json_object_is_400_for_the_body_as_a_whole(funded, alice_device, path, case, raw):
    before = ledger(funded)
    assert_invalid(alice_device.post(path, raw=raw), None)
    assert ledger(funded) == before


def test_a_quantity_too_large_for_a_float_is_refused_naming_it(funded, alice_device):
    raw = '{"output_type": "ai_image", "quantity": 1e400, "event_id": "e", "idempotency_key": "k"}'
    before = ledger(funded)
    assert_invalid(alice_device.post("/api/v1/usage", raw=raw), "quantity")
    assert ledger(funded) == before


def test_a_lone_surrogate_in_an_id_is_refused_not_stored(funded, alice_device):
    raw = '{"output_type": "ai_image", "quantity": 1, "event_id": "\\ud800", "idempotency_key": "k"}'
    assert_invalid(alice_device.post("/api/v1/usage", raw=raw), "event_id")


def test_ids_of_exactly_100_characters_and_any_language_are_accepted(funded, alice_device):
    response = alice_device.post("/api/v1/usage", {**GOOD_USAGE, "event_id": "é" * 100, "idempotency_key": "鍵" * 100})
    assert response.status_code == 201
    assert response.json()["event_id"] == "é" * 100


def test_quantity_10000_is_the_largest_accepted(alice, alice_device):
    grant(alice.account, 10_000)
    response = alice_device.post("/api/v1/usage", {**GOOD_USAGE, "quantity": 10_000})
    assert response.status_code == 201
    assert response.json()["balance"] == 0


def test_a_missing_field_is_reported_before_a_bad_one_that_comes_later(funded, alice_device):
    body = {"quantity": 0, "event_id": "", "idempotency_key": "k"}
    assert_invalid(alice_device.post("/api/v1/usage", body), "output_type")


def test_an_event_id_too_long_in_the_stop_path_is_400(alice_device):
    assert_invalid(alice_device.post("/api/v1/events/" + "e" * 101 + "/stop"), "event_id")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; "
                                          "boundary=x", "application/json; charset=latin-1", ""])
def test_a_body_not_sent_as_json_is_415_and_debits_nothing(funded, alice_device, content_type):
    before = ledger(funded)
    response = alice_device.post("/api/v1/usage", raw=json.dumps(GOOD_USAGE), content_type=content_type)
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert ledger(funded) == before


def test_an_empty_post_without_a_content_type_is_415(funded, alice_device):
    # What `curl -X POST` without a body sends.
    assert alice_device.post("/api/v1/usage", raw="", content_type="").status_code == 415


def test_json_with_a_utf8_charset_is_accepted(funded, alice_device):
    response = alice_device.post("/api/v1/usage", raw=json.dumps(GOOD_USAGE),
                                 content_type="application/json; charset=UTF-8")
    assert response.status_code == 201


def test_a_body_too_large_is_413(funded, alice_device, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = alice_device.post("/api/v1/usage", {**GOOD_USAGE, "event_id": "e" * 2000})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("get", "/api/v1/usage", "POST"),
    ("put", "/api/v1/usage", "POST"),
    ("delete", "/api/v1/events/start", "POST"),
    ("get", "/api/v1/events/wedding/stop", "POST"),
    ("post", "/api/v1/balance", "GET"),
    ("patch", "/api/v1/licenses", "GET"),
    ("post", "/api/v1/openapi.json", "GET"),
])
def test_a_wrong_method_is_405_with_the_allowed_ones(funded, alice_device, method, path, allowed):
    before = ledger(funded)
    response = getattr(alice_device.http, method)(path, headers=alice_device.headers())
    assert response.status_code == 405
    assert response["Allow"] == allowed
    assert response.json()["error"] == "method_not_allowed"
    assert ledger(funded) == before


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v2/usage", "/api/v1/usage/", "/api/v1/events//stop"])
def test_an_unknown_api_path_is_a_json_404(alice_device, path):
    response = alice_device.post(path, GOOD_USAGE)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize("encoded", ["wed%0Ading", "wed%00ding", "%7F"])
def test_control_characters_in_the_stop_path_are_400_naming_the_event_id(alice_device, encoded):
    assert_invalid(alice_device.post(f"/api/v1/events/{encoded}/stop"), "event_id")


@pytest.mark.parametrize("value", [" ", "e1 ", " e1", "\u00a0e1"])
def test_ids_with_spaces_at_either_end_are_refused(alice, alice_device, value):
    before = ledger(alice.account)
    response = alice_device.usage(key=value)
    assert response.status_code == 400
    assert response.json()["field"] == "idempotency_key"
    assert ledger(alice.account) == before
