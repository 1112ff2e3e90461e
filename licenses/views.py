"""The Licenses tab: the list, the purchase modal with its live Order Summary, cancel and undo."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts.decorators import account_required
from licenses.forms import ALLOWED_FIELDS, PurchaseForm
from licenses.models import Feature, License
from licenses.services import (
    LicenseActionRefused,
    license_cancel,
    license_purchase,
    license_undo_cancel,
    prices_in_force,
    purchase_quote,
)
from payments.services import NoDefaultCard, PaymentDeclined, default_card
from pictor_billing import pricing
from pictor_billing.form_tokens import (
    form_token_new,
    form_token_nonce,
    form_with_fresh_token,
    unexpected_fields_error,
)
from pictor_billing.htmx import render_htmx

TOKEN_SALT = "licenses.purchase"
NOT_ON_SALE = "This license is not on sale right now. Choose another tier or period."


@require_GET
@account_required
def license_list(request):
    """The account's licenses, newest first."""
    licenses = License.objects.filter(account=request.account)
    return render_htmx(request, "licenses/list.html", {"licenses": licenses, "tab": "licenses"}, partial="table")


def _modal_context(request, form, quote=None, error=""):
    today = timezone.now().date()
    return {
        "form": form, "quote": quote, "error": error, "tab": "licenses",
        "tiers": _tier_cards(today),
        "card": default_card(request.account),
    }


def _tier_cards(today):
    prices = prices_in_force(today)
    features = list(Feature.objects.filter(on_card=True))
    return [
        {"tier": tier, "label": pricing.TIER_LABELS[tier], "popular": tier == pricing.PRO,
         "monthly": prices.get((tier, pricing.MONTHLY)), "annual": prices.get((tier, pricing.ANNUAL)),
         "features": [feature.name for feature in features if feature.in_tier(tier)]}
        for tier in pricing.TIERS
    ]


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


@require_POST
@account_required
def license_cancel_view(request, pk):
    """Cancel at period end (it stays active until its billing date)."""
    license = get_object_or_404(License, pk=pk, account=request.account)
    try:
        license = license_cancel(account=request.account, license=license)
    except LicenseActionRefused as refused:
        messages.error(request, str(refused))
        return _to_list_or_row(request, license, status=409)
    messages.success(request, f"License #{license.pk} is cancelled. It stays active until "
                              f"{license.period_end:%b} {license.period_end.day}, {license.period_end.year}.")
    return _to_list_or_row(request, license)


@require_POST
@account_required
def license_undo_cancel_view(request, pk):
    """Undo a cancellation before the billing date."""
    license = get_object_or_404(License, pk=pk, account=request.account)
    try:
        license = license_undo_cancel(account=request.account, license=license)
    except LicenseActionRefused as refused:
        messages.error(request, str(refused))
        return _to_list_or_row(request, license, status=409)
    messages.success(request, f"License #{license.pk} will renew as normal.")
    return _to_list_or_row(request, license)


def _to_list_or_row(request, license, status=200):
    if request.htmx and request.htmx.target == f"license-{license.pk}":
        return render_htmx(request, "licenses/list.html", {"license": license}, partial="row", status=status)
    if status != 200:  # a refusal: show it on the page, with its 4xx
        licenses = License.objects.filter(account=request.account)
        return render_htmx(request, "licenses/list.html", {"licenses": licenses, "tab": "licenses"}, status=status)
    return redirect("licenses:list")


@require_GET
@account_required
def feature_list(request):
    """The full feature list, per tier."""
    return render_htmx(request, "licenses/features.html", {
        "features": Feature.objects.all(), "tiers": _tier_cards(timezone.now().date()), "tab": "licenses"})
