"""The device API (JSON, API keys) under /api/v1/: see billing/openapi.py. No trailing slashes, as devices call them."""

from django.urls import path, re_path

from billing import api as billing_api
from billing.openapi import openapi_document
from licenses import api as licenses_api
from tokens import api as tokens_api

app_name = "api"
urlpatterns = [
    path("usage", billing_api.usage_create, name="usage"),
    path("balance", tokens_api.balance, name="balance"),
    path("events/start", licenses_api.event_start_view, name="event_start"),
    # Any text, slashes (sent percent-encoded) and newlines included: the view checks the id and
    # answers 400 naming it, where a stricter pattern would give a puzzling 404.
    re_path(r"^events/(?P<event_id>(?s:.+))/stop$", licenses_api.event_stop_view, name="event_stop"),
    path("licenses", licenses_api.license_list, name="licenses"),
    path("openapi.json", openapi_document, name="openapi"),
]
