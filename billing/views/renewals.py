"""Pay now: the owner pays a past-due renewal with the default card (or a card added on the way)."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from accounts.decorators import account_required
from billing.models import Renewal
from billing.renewals import NothingToPay, renewal_pay_now
from billing.views.paying import to_confirm_page
from payments.models import PaymentAttempt
from payments.services import default_card
from pictor_billing import clock
from pictor_billing.money import format_usd


@require_http_methods(["GET", "POST"])
@account_required
def renewal_pay(request, pk):
    """Show what is owed and pay it now; a success clears the past-due state at once."""
    renewal = get_object_or_404(Renewal.objects.select_related("invoice"), pk=pk, account=request.account)
    invoice = renewal.invoice
    card = default_card(request.account)
    context = {"renewal": renewal, "invoice": invoice, "card": card, "tab": "licenses",
               "card_usable": card is not None and not card.is_expired(clock.today(request.account)),
               "add_card_url": f"{reverse('payments:card_add')}?next={reverse('billing:renewal_pay', args=[pk])}"}
    if invoice is None or invoice.status != invoice.OPEN:
        messages.info(request, f"Invoice {invoice.number if invoice else ''} is not waiting for payment: "
                               "nothing more to pay.")
        return redirect("licenses:list")
    if request.method == "GET":
        return TemplateResponse(request, "billing/renewal_pay.html", context)
    if not context["card_usable"]:
        return TemplateResponse(request, "billing/renewal_pay.html",
                                {**context, "error": "Add a card first: nothing was charged."}, status=402)
    try:
        attempt = renewal_pay_now(account=request.account, renewal=renewal)
    except NothingToPay:
        messages.info(request, "This renewal is paid already. Nothing more was charged.")
        return redirect("licenses:list")
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
    return TemplateResponse(request, "billing/renewal_pay.html",
                            {**context, "error": f"{attempt.failure_reason or 'Your card was declined.'} "
                                                 "Nothing was charged: add another card or try again."},
                            status=402)
