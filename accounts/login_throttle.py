"""django-axes' hooks (settings.AXES_*): which email a failed log-in counts against, and the page a
locked-out log-in gets."""

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render


def login_email(request, credentials: dict | None) -> str:
    """The email as log in matches it (any case, spaces trimmed), so ALICE@… and alice@… share one count."""
    credentials = credentials or {}
    email = (credentials.get("username") or credentials.get("email")  # the login form; authenticate(email=...)
             or (request.POST.get("username", "") if request else ""))
    return email.strip().lower()


def login_locked_out(request, original_response=None, credentials=None):
    """The log-in page again, with status 429, saying why it refuses and for how long."""
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    # Rendered here: AxesMiddleware swaps it in after the view's own response was rendered.
    return render(request, "registration/login.html", {
        "form": AuthenticationForm(request), "next": request.POST.get("next", ""), "locked_out_minutes": minutes,
    }, status=429)
