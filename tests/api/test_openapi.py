"""The OpenAPI document: served to anyone, valid OpenAPI 3.1, and describing every endpoint and refusal."""

import copy
import re

import pytest
import schemathesis
from django.test import Client

from billing.api_urls import urlpatterns as api_patterns
from billing.openapi import DOCUMENT
from pictor_billing import pricing
from tokens.models import OUTPUT_TYPES

URL = "/api/v1/openapi.json"


@pytest.fixture
def served() -> dict:
    response = Client().get(URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.json()


def test_the_document_is_served_without_a_key_as_json(served):
    assert served["openapi"] == "3.1.0"
    assert served == DOCUMENT


def test_the_document_is_valid_openapi_3_1(served):
    schemathesis.openapi.from_dict(served).validate()


def test_the_validator_does_refuse_a_broken_document():
    broken = copy.deepcopy(DOCUMENT)
    del broken["info"]
    with pytest.raises(ValueError, match="info"):  # jsonschema_rs.ValidationError
        schemathesis.openapi.from_dict(broken).validate()


def test_every_api_route_is_documented_and_nothing_else(served):
    routes = {"/api/v1/" + re.sub(r"\(\?P<(\w+)>.*\)", r"{\1}", str(p.pattern)).strip("^$") for p in api_patterns}
    routes.discard(URL)
    assert set(served["paths"]) == routes


def test_every_operation_needs_a_key_and_documents_401_and_405(served):
    scheme = served["components"]["securitySchemes"]["deviceKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert served["security"] == [{"deviceKey": []}]
    for path, operations in served["paths"].items():
        for method, operation in operations.items():
            assert {"401", "405"} <= set(operation["responses"]), f"{method} {path}"
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= set(operation["responses"]), f"{method} {path}"


def test_the_request_schemas_say_what_the_endpoints_check(served):
    schemas = served["components"]["schemas"]
    usage = schemas["UsageRequest"]
    assert set(usage["required"]) == {"output_type", "quantity", "event_id", "idempotency_key"}
    assert usage["additionalProperties"] is False
    assert usage["properties"]["output_type"]["enum"] == [name for name, _ in OUTPUT_TYPES]
    quantity = usage["properties"]["quantity"]
    assert (quantity["type"], quantity["minimum"], quantity["maximum"]) == ("integer", 1, 10_000)
    start = schemas["EventStartRequest"]
    assert set(start["required"]) == {"event_id", "event_tier", "device_id"}
    assert start["additionalProperties"] is False
    assert schemas["Tier"]["enum"] == list(pricing.TIERS) == ["basic", "pro", "premium"]
    assert (schemas["Identifier"]["minLength"], schemas["Identifier"]["maxLength"]) == (1, 100)


def test_the_usage_endpoint_documents_402_and_409(served):
    responses = served["paths"]["/api/v1/usage"]["post"]["responses"]
    assert {"201", "402", "409"} <= set(responses)
    start = served["paths"]["/api/v1/events/start"]["post"]["responses"]
    assert {"200", "201", "403", "409"} <= set(start)
