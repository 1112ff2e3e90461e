"""Top Up: choose a package and pay; the tokens are credited at once with an invoice of their own."""

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from accounts.decorators import account_required
from billing.top_up import tokens_top_up
from payments.services import NoDefaultCard, PaymentDeclined, default_card
from pictor_billing.form_tokens import form_token_new, form_token_nonce, form_with_fresh_token, unexpected_fields_error
from pictor_billing.htmx import render_htmx
from pictor_billing.redirects import safe_next_url
from tokens.forms import ALLOWED_FIELDS, TopUpForm
from tokens.services import top_up_quote

TOKEN_SALT = "tokens.top_up"


def _context(request, form, error=""):
    packages = [(package, top_up_quote(account=request.account, package=package))
                for package in form.fields["package"].queryset]
    return {"form": form, "packages": packages, "error": error, "card": default_card(request.account),
            "next": request.POST.get("next") or request.GET.get("next") or ""}


@require_http_methods(["GET", "POST"])
@account_required
def top_up(request):
    """Choose a package and pay; the tokens are credited at once with an invoice of their own."""
    if request.method == "GET":
        form = TopUpForm(initial={"token": form_token_new(account_id=request.account.pk, salt=TOKEN_SALT)})
        return render_htmx(request, "tokens/top_up.html", _context(request, form), partial="modal")
    form = TopUpForm(request.POST)
    if tampered := unexpected_fields_error(request.POST, ALLOWED_FIELDS):
        return _failed(request, form, tampered, 400)
    if not form.is_valid():
        return _failed(request, form, "Choose a package. Nothing was charged.", 400)
    nonce = form_token_nonce(form.cleaned_data["token"], account_id=request.account.pk, salt=TOKEN_SALT)
    if nonce is None:
        return _failed(request, form, "This form has expired. Choose the package again.", 400, fresh_token=True)
    try:
        result, created = tokens_top_up(account=request.account, package=form.cleaned_data["package"], token=nonce)
    except NoDefaultCard:
        return _failed(request, form, "Add a card before topping up. Nothing was charged.", 402)
    except PaymentDeclined as declined:
        return _failed(request, form, f"{declined.reason} Nothing was charged.", 402)
    if created:
        messages.success(request, f"{result.tokens:,} tokens added. Invoice {result.invoice.number} is on the "
                                  "Invoices tab.")
    else:
        messages.info(request, f"This top-up was already completed (invoice {result.invoice.number}).")
    target = safe_next_url(request) or reverse("licenses:list")
    return HttpResponseClientRedirect(target) if request.htmx else redirect(target)


def _failed(request, form, error, status, fresh_token=False):
    if fresh_token or not form.data.get("token"):
        form = form_with_fresh_token(form, account_id=request.account.pk, salt=TOKEN_SALT)
    return render_htmx(request, "tokens/top_up.html", _context(request, form, error), partial="top_up_form",
                       status=status)


