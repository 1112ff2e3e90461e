"""Add License: the purchase modal with its live Order Summary, and Complete Purchase."""

from django.contrib import messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from accounts.decorators import account_required
from billing.purchase import license_purchase
from licenses.forms import ALLOWED_FIELDS, PurchaseForm
from licenses.services import purchase_quote, tier_cards
from payments.services import NoDefaultCard, PaymentDeclined, default_card
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


def _modal_context(request, form, quote=None, error=""):
    today = clock.today(request.account)
    return {
        "form": form, "quote": quote, "error": error, "tab": "licenses",
        "tiers": tier_cards(today),
        "card": default_card(request.account),
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
    """Add License: the modal (HTMX) or page (no JavaScript); POST completes the purchase."""
    if request.method == "POST":
        return _purchase(request)
    data = {"period": pricing.MONTHLY, "tier": pricing.PRO, "quantity": 1, "coupon": "",
            "token": form_token_new(account_id=request.account.pk, salt=TOKEN_SALT)}
    form = PurchaseForm(data)
    return render_htmx(request, "licenses/add.html", _modal_context(request, form, _quote_or_none(request, form)),
                       partial="modal")


def _purchase(request):
    form = PurchaseForm(request.POST)
    if tampered := unexpected_fields_error(request.POST, ALLOWED_FIELDS):
        return _purchase_failed(request, form, tampered, status=400)
    if "preview" in request.POST:  # "Update summary" (or Enter): show the order again, buy nothing
        status = 200 if form.is_valid() else 400
        return render_htmx(request, "licenses/add.html", _modal_context(request, form, _quote_or_none(request, form)),
                           partial="purchase_form", status=status)
    if not form.is_valid():
        return _purchase_failed(request, form, "Please correct the highlighted fields. Nothing was charged.",
                                status=400)
    nonce = form_token_nonce(form.cleaned_data["token"], account_id=request.account.pk, salt=TOKEN_SALT)
    if nonce is None:
        return _purchase_failed(request, form, "This form has expired. Review the order and try again.",
                                status=400, fresh_token=True)
    data = form.cleaned_data
    try:
        purchase, created = license_purchase(account=request.account, user=request.user, token=nonce,
                                             tier=data["tier"], period=data["period"],
                                             quantity=data["quantity"], coupon_code=data["coupon"])
    except NoDefaultCard:
        return _purchase_failed(request, form, "Add a card before buying licenses. Nothing was charged.", status=402)
    except pricing.PricingError:
        return _purchase_failed(request, form, f"{NOT_ON_SALE} Nothing was charged.", status=400)
    except PaymentDeclined as declined:
        return _purchase_failed(request, form, f"{declined.reason} Nothing was charged.", status=402)
    if created:
        messages.success(request, f"Purchase complete: {purchase.invoice.description}. "
                                  f"Invoice {purchase.invoice.number} is on the Invoices tab.")
    else:
        messages.info(request, f"This purchase was already completed (invoice {purchase.invoice.number}). "
                               "Nothing more was charged.")
    if request.htmx:
        return HttpResponseClientRedirect(reverse("licenses:list"))
    return redirect("licenses:list")


def _purchase_failed(request, form, error, *, status, fresh_token=False):
    if fresh_token or not form.data.get("token"):
        form = form_with_fresh_token(form, account_id=request.account.pk, salt=TOKEN_SALT)
    context = _modal_context(request, form, _quote_or_none(request, form), error)
    return render_htmx(request, "licenses/add.html", context, partial="purchase_form", status=status)


@require_GET
@account_required
def purchase_summary(request):
    """The Order Summary fragment, re-rendered by the server on every change in the modal."""
    form = PurchaseForm(request.GET)
    quote = _quote_or_none(request, form)
    response = TemplateResponse(request, "licenses/add.html#summary", {"form": form, "quote": quote},
                                status=200 if quote is not None else 400)
    patch_vary_headers(response, ("HX-Request",))
    return response


