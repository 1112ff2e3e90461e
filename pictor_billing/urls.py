"""URLs: the Billing area under /billing/, accounts at the top, Django admin under /admin/."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import include, path
from django.views.generic import RedirectView

from accounts import views as account_views


def healthz(request):
    """Liveness probe; also the bare-Django baseline the benchmarks compare against."""
    return HttpResponse("ok", content_type="text/plain")


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
    path("admin/", admin.site.urls),
    path("healthz", healthz),
]
