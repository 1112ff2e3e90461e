"""Sign-up: a new company account, its first user and the welcome tokens."""

from django.contrib.auth import login
from django.db import IntegrityError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts.forms import SignupForm
from billing.signup import account_signup


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def signup(request):
    """Create a company account and its first user, then log them in."""
    if request.user.is_authenticated:
        return redirect("licenses:list")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = account_signup(company_name=data["company_name"], email=data["email"], password=data["password"])
        except IntegrityError:  # the same email signed up a moment ago, in another request
            form.add_error("email", SignupForm.EMAIL_TAKEN)
        else:
            login(request, user, backend="accounts.backends.EmailBackend")
            return redirect("licenses:list")
    return TemplateResponse(request, "accounts/signup.html", {"form": form},
                            status=400 if form.is_bound else 200)
