"""URLs: the Billing area under /billing/, the device API under /api/v1/, accounts at the top,
Django admin under /admin/."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from accounts import views as account_views
from accounts import views_api_keys
from licenses import api as licenses_api
from pictor_billing.api import api_not_found
from pictor_billing.openapi import openapi_document
from tokens import api as tokens_api


def healthz(request):
    """Liveness probe; also the bare-Django baseline the benchmarks compare against."""
    return HttpResponse("ok", content_type="text/plain")


# The device API (JSON, API keys): see pictor_billing/openapi.py. No trailing slashes, as devices call them.
api_patterns = [
    path("usage", tokens_api.usage_create, name="usage"),
    path("balance", tokens_api.balance, name="balance"),
    path("events/start", licenses_api.event_start_view, name="event_start"),
    # Any text, slashes (sent percent-encoded) and newlines included: the view checks the id and
    # answers 400 naming it, where a stricter pattern would give a puzzling 404.
    re_path(r"^events/(?P<event_id>(?s:.+))/stop$", licenses_api.event_stop_view, name="event_stop"),
    path("licenses", licenses_api.license_list, name="licenses"),
    path("openapi.json", openapi_document, name="openapi"),
]
api_key_patterns = [
    path("", views_api_keys.api_key_list, name="list"),
    path("<int:pk>/revoke/", views_api_keys.api_key_revoke_view, name="revoke"),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="licenses:list"), name="home"),
    path("signup/", account_views.signup, name="signup"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("billing/", RedirectView.as_view(pattern_name="licenses:list")),
    path("billing/licenses/", include("licenses.urls")),
    path("billing/payment/", include("payments.urls")),
    path("billing/invoices/", include("invoices.urls")),
    path("billing/tokens/", include("tokens.urls")),
    path("billing/api-keys/", include((api_key_patterns, "api_keys"))),
    path("admin/", admin.site.urls),
    path("healthz", healthz),
    path("api/v1/", include((api_patterns, "api"))),
    re_path(r"^api/", api_not_found),
]
