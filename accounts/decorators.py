"""The access rule at the top of every Billing view: logged in, and acting for one's own account."""

from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import resolve_url
from django.utils.cache import patch_cache_control
from django_htmx.http import HttpResponseClientRedirect


def account_required(view):
    """Log in first; then `request.account` is the user's account (404 for a user without one).

    Every answer is `Cache-Control: private, no-store`: a Billing page or PDF holds one account's
    cards, invoices and keys, and must stay out of shared caches and the browser's disk (Back after
    logging out on a shared computer).

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
        response = view(request, *args, **kwargs)
        patch_cache_control(response, private=True, no_store=True)
        return response

    return wrapper
