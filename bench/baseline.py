"""The benchmarks' baseline page, and the URLconf and WSGI application that mount it (benchmarks only).

The authenticated-page baseline (issue 12, "Baselines"): a view behind the project's whole
middleware stack and the same log-in check as every Billing and finance page, that reads the
session and the user (Django's session and authentication middleware: one query each), one row
(the user's account, or the first account for staff who have none) and renders a small template
(with the project's context processors). A page's latency ÷ this one's is then our overhead, not
Django's or the database's.

It is never mounted by the project itself. A benchmark serves it with

    gunicorn bench.baseline:application        (cwd: the repository; BASELINE_PATH below)

which is the project's own WSGI application with ROOT_URLCONF pointing here: this URLconf adds
BASELINE_PATH and then includes every project URL unchanged. In-process (the Django test client),
use `override_settings(ROOT_URLCONF=URLCONF)`. Used by bench/finance.py, bench/run.py and
bench/usage.py; any other bench script can use it the same way.

The authenticated API call baseline (API_BASELINE_PATH, bench/usage.py's): the device API's own
`api_key_required` check (one indexed read of the key with its account) and one SELECT, as JSON.
"""

import functools
import os

from django.http import HttpResponse
from django.template import engines
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

URLCONF = "bench.baseline"
BASELINE_PATH = "/bench/baseline/"
MARKER = b'data-baseline="ok"'  # in every baseline answer: a load generator can tell it from a login redirect

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Baseline · Pictor Billing</title></head>
<body data-baseline="ok"><main><h1>{{ name }}</h1><p>Signed in as {{ user.email }} ({{ visits }} visits).</p></main>
</body></html>"""


@require_GET
def baseline_page(request):
    """The session, the user and one row, rendered by a small template: the cheapest authenticated page.

    Anonymous: the login page, as `login_required` (and the Billing and finance pages' own checks) answer.
    """
    # Imported here: gunicorn imports this module for `application` before Django is set up.
    from django.contrib.auth.views import redirect_to_login

    from accounts.models import Account

    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    visits = request.session.get("bench_visits", 0)  # reads the session; writing it would add a query
    accounts = Account.objects.order_by("pk").values_list("name", flat=True)
    name = (accounts.filter(pk=request.user.account_id) if request.user.account_id else accounts)[:1]
    context = {"name": next(iter(name), ""), "visits": visits}
    return HttpResponse(_template().render(context, request))


def _template():
    """Compiled once, as the cached template loader keeps the real pages' templates."""
    global _compiled
    if _compiled is None:
        _compiled = engines["django"].from_string(_TEMPLATE)
    return _compiled


_compiled = None

API_BASELINE_PATH = "/bench/api/"


@csrf_exempt
def baseline_api(request):
    """The authenticated API call baseline: the device API's own key check and one SELECT, answered as JSON."""
    return _api_view()(request)


@functools.cache
def _api_view():
    # Built on the first call: the API's decorators import models, which is too early at import time.
    from accounts.api_keys import api_key_required
    from accounts.models import Account
    from pictor_billing.api import api_view, json_response

    @api_view("GET")
    @api_key_required
    def view(request):
        name = Account.objects.filter(pk=request.account.pk).values_list("name", flat=True).first()
        return json_response({"account": name, "baseline": "ok"})

    return view


def _urlpatterns() -> list:
    return [
        path(BASELINE_PATH.strip("/") + "/", baseline_page, name="bench_baseline"),
        path(API_BASELINE_PATH.strip("/") + "/", baseline_api, name="bench_api_baseline"),
        path("", include("pictor_billing.urls")),
    ]


def _application():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pictor_billing.settings")
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    wsgi = get_wsgi_application()
    settings.ROOT_URLCONF = URLCONF  # read per request by Django's handler: set before the first one
    return wsgi


def __getattr__(name):
    """`application` and `urlpatterns` are made on first use: gunicorn imports this module before Django is
    set up (and `include` imports the project's URLconf, with its views, at once); importing the module
    as a URLconf sets nothing up."""
    if name == "application":
        globals()["application"] = made = _application()
    elif name == "urlpatterns":
        globals()["urlpatterns"] = made = _urlpatterns()
    else:
        raise AttributeError(name)
    return made
