"""The Payment tab: saved cards (add, make default) and the billing details form (removing is billing.views.cards)."""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts.decorators import account_required
from accounts.services import BILLING_DETAIL_FIELDS, billing_details_update
from payments.forms import BillingDetailsForm, CardForm
from payments.gateway import CardError, ProcessorUnavailable
from payments.models import Card
from payments.services import (
    CardGone,
    card_add,
    card_make_default,
    card_setup_begin,
    card_setup_finish,
    cards_in_browser,
)
from pictor_billing import clock
from pictor_billing.htmx import render_htmx
from pictor_billing.redirects import safe_next_url

# Messages about the cards and about the billing details are shown beside them (templates/_placed_messages.html),
# where the person who pressed the button is looking, not at the top of the page.
CARDS_PLACE, DETAILS_PLACE = "cards", "billing-details"


def _tab_context(request, **extra):
    today = clock.today(request.account)
    cards = list(Card.objects.filter(account=request.account))
    for card in cards:
        card.flag = "expired" if card.is_expired(today) else "soon" if card.expires_soon(today) else ""
    return {"tab": "payment", "cards": cards, "details_form": BillingDetailsForm(instance=request.account), **extra}


@require_GET
@account_required
def payment_tab(request):
    """Cards and billing details."""
    return render_htmx(request, "payments/payment.html", _tab_context(request), partial="cards")


@sensitive_post_parameters("number", "cvc")
@require_http_methods(["GET", "POST"])
@account_required
def card_add_view(request):
    """Add a card (the sandbox form, or Stripe's card Element); the first card becomes the default."""
    if cards_in_browser():
        return _card_add_in_browser(request)
    form = CardForm(request.POST or None, today=clock.today(request.account))
    next_url = safe_next_url(request)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            card = card_add(account=request.account, number=data["number"], exp_month=data["exp_month"],
                            exp_year=data["exp_year"], cvc=data["cvc"])
        except CardError as error:
            form.add_error(error.field, error.message)
        else:
            default = " It is your default card." if card.is_default else ""
            messages.success(request, f"{card.brand} ending {card.last4} added.{default}")
            return redirect(next_url or "payments:tab")
    status = 400 if request.method == "POST" else 200
    return render_htmx(request, "payments/card_add.html", {"form": form, "tab": "payment", "next": next_url},
                       partial="modal", status=status)



def _card_add_in_browser(request):
    """Stripe: the card Element confirms a SetupIntent in the browser; the form posts only its id."""
    next_url = safe_next_url(request)
    if request.htmx:  # Stripe.js needs a page of its own, not a fragment in a modal
        return HttpResponseClientRedirect(request.get_full_path())
    error, status = "", 200
    if request.method == "POST":
        setup_ref = request.POST.get("setup_intent", "")
        if not setup_ref.startswith("seti_") or len(setup_ref) > 255:
            error, status = "The card form did not finish. Enter the card again; nothing was saved.", 400
        else:
            try:
                card = card_setup_finish(account=request.account, setup_ref=setup_ref)
            except CardError as refused:
                error, status = f"{refused.message} Nothing was saved.", 400
            except ProcessorUnavailable:
                error, status = "Stripe did not answer. Try again in a moment; nothing was saved.", 503
            else:
                default = " It is your default card." if card.is_default else ""
                messages.success(request, f"{card.brand} ending {card.last4} added.{default}")
                return redirect(next_url or "payments:tab")
    try:
        setup = card_setup_begin(account=request.account)
    except ProcessorUnavailable:
        return render_htmx(request, "payments/card_add_stripe.html", {
            "tab": "payment", "error": "Stripe did not answer. Try again in a moment.", "setup": {}}, status=503)
    return render_htmx(request, "payments/card_add_stripe.html", {
        "tab": "payment", "next": next_url, "setup": setup, "error": error,
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY, "stripe_js_url": settings.STRIPE_JS_URL}, status=status)


@require_POST
@account_required
def card_make_default_view(request, pk):
    """Make this card the default for every charge."""
    card = get_object_or_404(Card, pk=pk, account=request.account)
    try:
        card_make_default(account=request.account, card=card)
    except CardGone:
        messages.error(request, f"{card.label} was removed, so it cannot become the default.", extra_tags=CARDS_PLACE)
        return back_to_tab(request, status=409)
    messages.success(request, f"{card.label} is now your default card.", extra_tags=CARDS_PLACE)
    return back_to_tab(request)


def back_to_tab(request, status=200):
    """After a card action: the cards region for HTMX or a refusal (with its 4xx), else back to the tab."""
    if request.htmx or status != 200:  # a refusal is shown on the page, with its 4xx
        return render_htmx(request, "payments/payment.html", _tab_context(request), partial="cards", status=status)
    return redirect(f"{reverse('payments:tab')}#{CARDS_PLACE}")


@require_POST
@account_required
def billing_details_view(request):
    """Save the billing name and address used on invoices issued from now on."""
    form = BillingDetailsForm(request.POST, instance=request.account)
    if form.is_valid():
        billing_details_update(account=request.account,
                               **{name: form.cleaned_data[name] for name in BILLING_DETAIL_FIELDS})
        messages.success(request, "Billing details saved. New invoices will use them.", extra_tags=DETAILS_PLACE)
        if not request.htmx:  # back to the form, where the message is
            return redirect(f"{reverse('payments:tab')}#{DETAILS_PLACE}")
        return render_htmx(request, "payments/payment.html", _tab_context(request, details_form=form),
                           partial="details")
    return render_htmx(request, "payments/payment.html", _tab_context(request, details_form=form),
                       partial="details", status=400)
