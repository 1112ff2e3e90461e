"""The access rule at the top of every Billing view: logged in, and acting for one's own account."""

from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect


def account_required(view):
    """Log in first; then `request.account` is the user's account (404 for a user without one).

    An HTMX request from an expired session sends the whole page to log in
    (and back to that page afterwards), instead of swapping the login form
    into a fragment.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if request.htmx:
                back = request.htmx.current_url_abs_path or "/"
                return HttpResponseClientRedirect(f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': back})}")
            return redirect_to_login(request.get_full_path())
        if request.user.account_id is None:
            raise Http404("This user has no billing account.")
        request.account = request.user.account
        return view(request, *args, **kwargs)

    return wrapper
