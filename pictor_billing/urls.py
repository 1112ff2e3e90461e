"""URLs: the Billing area under /billing/, the device API under /api/v1/, accounts at the top,
Django admin under /admin/.

Apps are included by name, so this module imports none of them (STYLE.md, Layers).
"""

from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from pictor_billing.api import api_not_found


def healthz(request):
    """Liveness probe; also the bare-Django baseline the benchmarks compare against."""
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    # The device API first: its calls are the busiest, and resolving tries the patterns in order.
    path("api/v1/", include("billing.api_urls")),
    re_path(r"^api/", api_not_found),
    path("", RedirectView.as_view(pattern_name="licenses:list"), name="home"),
    path("", include("accounts.urls")),
    path("", include("billing.urls")),
    path("billing/", RedirectView.as_view(pattern_name="licenses:list")),
    path("billing/licenses/", include("licenses.urls")),
    path("billing/payment/", include("payments.urls")),
    path("billing/invoices/", include("invoices.urls")),
    path("billing/tokens/", include("tokens.urls")),
    path("billing/api-keys/", include("accounts.api_key_urls")),
    path("finance/", include("finance.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz),
]
