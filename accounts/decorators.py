"""The access rule at the top of every Billing view: logged in, and acting for one's own account."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import Http404


def account_required(view):
    """Log in first; then `request.account` is the user's account (404 for a user without one)."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.user.account_id is None:
            raise Http404("This user has no billing account.")
        request.account = request.user.account
        return view(request, *args, **kwargs)

    return wrapper
