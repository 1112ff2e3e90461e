"""Add License: the purchase modal with its live Order Summary, and paying for it.

The summary is rendered by the server on every change (a POST, so no token ends up in a URL) and
carries the signed digest of the order it shows, with the pay button naming the amount and card.
Paying charges only that order: if the server's quote differs in anything, nothing is charged and
the new summary is shown with "The total changed".
"""

from django.contrib import messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from accounts.decorators import account_required
from billing.checkout import PaymentNeedsAction
from billing.purchase import DIGEST_SALT, license_purchase
from billing.views.paying import REFUSALS, paid_message, pay_context, payment_refusal, to_confirm_page
from licenses.forms import ALLOWED_FIELDS, PurchaseForm
from licenses.services import purchase_quote, tier_cards
from payments.models import PaymentAttempt
from pictor_billing import clock, pricing
from pictor_billing.form_tokens import (
    form_token_new,
    form_token_nonce,
    form_with_fresh_token,
    unexpected_fields_error,
)
from pictor_billing.htmx import render_htmx

TOKEN_SALT = "licenses.purchase"
NOT_ON_SALE = "This license is not on sale right now. Choose another tier or period."


def _context(request, form, quote=None, error="", notice="", *, tiers=True):
    """The modal's context; `tiers=False` for the summary alone, which shows no tier cards."""
    return {
        "form": form, "quote": quote, "error": error, "notice": notice, "tab": "licenses",
        "tiers": tier_cards(clock.today(request.account)) if tiers else [],
        **pay_context(request, quote, salt=DIGEST_SALT, purpose=PaymentAttempt.PURCHASE,
                      next_url=reverse("billing:license_add")),
    }


def _quote_or_none(request, form):
    """The quote for a valid form; None (with the reason added to the form) otherwise."""
    if not form.is_valid():
        return None
    data = form.cleaned_data
    try:
        quote, _ = purchase_quote(account=request.account, tier=data["tier"], period=data["period"],
                                  quantity=data["quantity"], coupon_code=data["coupon"])
    except pricing.PricingError:
        form.add_error("tier", NOT_ON_SALE)
        return None
    return quote


@require_http_methods(["GET", "POST"])
@account_required
def license_add(request):
    """Add License: the modal (HTMX) or page (no JavaScript); POST pays for the order on screen."""
    if request.method == "POST":
        return _purchase(request)
    data = {"period": pricing.MONTHLY, "tier": pricing.PRO, "quantity": 1, "coupon": "",
            "token": form_token_new(account_id=request.account.pk, salt=TOKEN_SALT)}
    form = PurchaseForm(data)
    return render_htmx(request, "licenses/add.html", _context(request, form, _quote_or_none(request, form)),
                       partial="modal")


def _purchase(request):
    form = PurchaseForm(request.POST)
    if tampered := unexpected_fields_error(request.POST, ALLOWED_FIELDS):
        return _form(request, form, tampered, status=400)
    if "preview" in request.POST:  # "Update summary" (or Enter): show the order again, buy nothing
        return _form(request, form, status=200 if form.is_valid() else 400)
    if not form.is_valid():
        return _form(request, form, "Please correct the highlighted fields. Nothing was charged.", status=400)
    nonce = form_token_nonce(form.cleaned_data["token"], account_id=request.account.pk, salt=TOKEN_SALT)
    if nonce is None:
        return _form(request, form, "This form has expired. Review the order and try again.", status=400,
                     fresh_token=True)
    data = form.cleaned_data
    try:
        purchase, created = license_purchase(account=request.account, user=request.user, token=nonce,
                                             tier=data["tier"], period=data["period"], quantity=data["quantity"],
                                             coupon_code=data["coupon"], shown_digest=request.POST.get("quote", ""))
    except pricing.PricingError:
        return _form(request, form, f"{NOT_ON_SALE} Nothing was charged.", status=400)
    except PaymentNeedsAction as needs:
        return to_confirm_page(request, needs.attempt)
    except REFUSALS as refused:
        error, notice, status = payment_refusal(refused, no_card="buying licenses", delivered="Your licenses appear")
        return _form(request, form, error, status=status, notice=notice)
    if created:
        messages.success(request, paid_message(purchase, purchase.invoice.payment_attempts.first()))
    else:
        messages.info(request, f"This purchase was already completed (invoice {purchase.invoice.number}). "
                               "Nothing more was charged.")
    if request.htmx:
        return HttpResponseClientRedirect(reverse("licenses:list"))
    return redirect("licenses:list")


def _form(request, form, error="", *, status, fresh_token=False, notice=""):
    """The purchase form again, with the summary as the server now quotes it."""
    if fresh_token or not form.data.get("token"):
        form = form_with_fresh_token(form, account_id=request.account.pk, salt=TOKEN_SALT)
    context = _context(request, form, _quote_or_none(request, form), error, notice)
    return render_htmx(request, "licenses/add.html", context, partial="purchase_form", status=status)


@require_http_methods(["GET", "POST"])
@account_required
def purchase_summary(request):
    """The Order Summary with its pay button, re-rendered by the server on every change in the modal."""
    form = PurchaseForm(request.POST if request.method == "POST" else request.GET)
    quote = _quote_or_none(request, form)
    response = TemplateResponse(request, "licenses/add.html#summary", _context(request, form, quote, tiers=False),
                                status=200 if quote is not None else 400)
    patch_vary_headers(response, ("HX-Request",))
    return response
