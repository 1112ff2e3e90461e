"""Pay now: the owner pays a past-due renewal with the default card, or with a new card entered on the
same page (saved, made the default, then charged)."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from accounts.decorators import account_required
from billing.models import Renewal
from billing.renewals import NothingToPay, renewal_pay_now
from billing.views.paying import to_confirm_page
from payments.forms import CardForm
from payments.gateway import CardError
from payments.models import PaymentAttempt
from payments.services import CardGone, card_add, card_make_default, default_card
from pictor_billing import clock
from pictor_billing.money import format_usd

NEW_CARD = "new"


@require_http_methods(["GET", "POST"])
@account_required
def renewal_pay(request, pk):
    """Show what is owed and pay it now; a success clears the past-due state at once."""
    account = request.account
    renewal = get_object_or_404(Renewal.objects.select_related("invoice"), pk=pk, account=account)
    invoice = renewal.invoice
    if invoice is None or invoice.status != invoice.OPEN:
        messages.info(request, f"Invoice {invoice.number if invoice else ''} is not waiting for payment: "
                               "nothing more to pay.")
        return redirect("licenses:list")
    new_card = request.method == "POST" and request.POST.get("card") == NEW_CARD
    form = CardForm(request.POST if new_card else None, today=clock.today(account), prefix="new")

    def page(error="", status=200):
        card = default_card(account)
        last_failed = (PaymentAttempt.objects.filter(invoice=invoice, status=PaymentAttempt.FAILED)
                       .select_related("card").order_by("-pk").first())
        return TemplateResponse(request, "billing/renewal_pay.html", {
            "renewal": renewal, "invoice": invoice, "card": card, "form": form, "error": error, "tab": "licenses",
            "paying_renewal": True, "last_failed": last_failed,
            "card_usable": card is not None and not card.is_expired(clock.today(account))}, status=status)

    if request.method == "GET":
        return page()
    if new_card:
        if not form.is_valid():
            return page("Check the card details below: nothing was charged.", status=400)
        try:
            data = form.cleaned_data
            card = card_add(account=account, number=data["number"], exp_month=data["exp_month"],
                            exp_year=data["exp_year"], cvc=data["cvc"])
            card_make_default(account=account, card=card)
        except CardError as error:
            form.add_error(error.field, error.message)
            return page(f"{error.message} Nothing was charged.", status=400)
        except CardGone:
            return page("That card was removed meanwhile. Nothing was charged.", status=409)
    else:
        card = default_card(account)
        if card is None or card.is_expired(clock.today(account)):
            return page("Add a card first: nothing was charged.", status=402)
    try:
        attempt = renewal_pay_now(account=account, renewal=renewal)
    except NothingToPay:
        messages.info(request, "This renewal is paid already. Nothing more was charged.")
        return redirect("licenses:list")
    return _answered(request, attempt, invoice, page)


def _answered(request, attempt: PaymentAttempt, invoice, page):
    if attempt.status == PaymentAttempt.REQUIRES_ACTION:
        return to_confirm_page(request, attempt)
    if attempt.status == PaymentAttempt.SUCCEEDED:
        messages.success(request, f"Paid: {format_usd(attempt.amount)} charged to {attempt.card.label} for invoice "
                                  f"{invoice.number}. Your licenses are active again.")
        return redirect("licenses:list")
    if attempt.status in (PaymentAttempt.PENDING, PaymentAttempt.UNKNOWN):
        messages.info(request, f"Your payment of {format_usd(attempt.amount)} is being confirmed with your bank; "
                               "nothing more will be charged.")
        return redirect("licenses:list")
    return page(f"{attempt.failure_reason or 'Your card was declined.'} Nothing was charged: try another card.",
                status=402)
