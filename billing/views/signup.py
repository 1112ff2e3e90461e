"""Sign-up (throttled per address), and the email verification that brings the welcome tokens."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.core.cache import cache
from django.db import IntegrityError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import account_required
from accounts.forms import SignupForm
from billing.signup import (
    account_signup,
    email_verification_send,
    email_verification_token,
    email_verification_user,
    email_verify,
)
from pictor_billing.client_ip import client_ip
from tokens.services import SIGNUP_GRANT_TOKENS

TOO_MANY_SIGNUPS = ("Too many accounts were created from your network in the last hour. Try again later, "
                    "or log in if you already have an account.")
RESEND_EVERY = 60  # seconds between two verification emails asked for by one user


def _signups_key(request) -> str:
    return f"signups:{client_ip(request)}"


def _signup_allowed(request) -> bool:
    limit = settings.SIGNUP_LIMIT_PER_HOUR
    return not limit or cache.get(_signups_key(request), 0) < limit


def _signup_counted(request) -> None:
    # The hour starts at the address's first sign-up. Two at the very same moment may both be let in
    # (the cache's increment is not atomic on every backend): a throttle, not a hard quota.
    cache.add(_signups_key(request), 0, timeout=3600)
    try:
        cache.incr(_signups_key(request))
    except ValueError:  # expired in between
        cache.add(_signups_key(request), 1, timeout=3600)


def _send_verification(request, user) -> None:
    link = request.build_absolute_uri(reverse("billing:email_verify", args=[email_verification_token(user)]))
    email_verification_send(user=user, link=link)


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def signup(request):
    """Create a company account and its first user, email the verification link, log them in."""
    if request.user.is_authenticated:
        return redirect("licenses:list")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and not _signup_allowed(request):
        return TemplateResponse(request, "accounts/signup.html", {"form": SignupForm(), "throttled": TOO_MANY_SIGNUPS},
                                status=429)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = account_signup(company_name=data["company_name"], email=data["email"], password=data["password"])
        except IntegrityError:  # the same email signed up a moment ago, in another request
            form.add_error("email", SignupForm.EMAIL_TAKEN)
        else:
            _signup_counted(request)
            _send_verification(request, user)
            login(request, user, backend="accounts.backends.EmailBackend")
            messages.info(request, f"Welcome! We emailed a link to {user.email}: open it to confirm your address "
                                   f"and get your {SIGNUP_GRANT_TOKENS} free tokens.")
            return redirect("licenses:list")
    return TemplateResponse(request, "accounts/signup.html", {"form": form},
                            status=400 if form.is_bound else 200)


@require_GET
def email_verify_view(request, token):
    """The link from the sign-up email: verify the address and add the welcome tokens (once)."""
    user = email_verification_user(token)
    if user is None:
        messages.error(request, "This confirmation link is invalid or has expired. Log in and ask for a new one.")
    elif email_verify(user=user):
        messages.success(request, f"Your email is confirmed: {SIGNUP_GRANT_TOKENS} free tokens were added.")
    else:
        messages.info(request, "Your email was already confirmed.")
    return redirect("licenses:list" if request.user.is_authenticated else "login")


@require_POST
@account_required
def email_verify_send(request):
    """Send the verification link again (at most once a minute)."""
    if request.user.email_verified_at:
        messages.info(request, "Your email is already confirmed.")
    elif cache.add(f"verify-email-sent:{request.user.pk}", True, timeout=RESEND_EVERY):
        _send_verification(request, request.user)
        messages.success(request, f"We sent a new link to {request.user.email}.")
    else:
        messages.info(request, f"We sent a link to {request.user.email} a moment ago; it can take a few minutes.")
    return redirect("licenses:list")
