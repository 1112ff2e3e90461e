"""What every modal that takes money shares: the pay button, and confirming a payment in the browser.

The pay button names the amount and the card ("Pay $297.00 with Visa ending 4242") and carries
the signed digest of the order on screen; while a payment of the same kind is being confirmed
with the processor the owner sees that instead of a second Pay button. A card that needs the
cardholder's authentication sends the owner to the confirm page (the sandbox's stand-in for
3-D Secure), after which the payment goes on exactly where it stopped.
"""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from accounts.decorators import account_required
from billing.cards import default_card_with
from billing.checkout import OrderChanged, PaymentNeedsAction, PaymentPending, checkout_continue
from billing.renewals import renewal_charge_outcome
from licenses.models import Purchase
from payments.models import PaymentAttempt
from payments.services import (
    NoDefaultCard,
    PaymentDeclined,
    attempt_refresh,
    attempts_unsettled,
    get_gateway,
)
from pictor_billing import clock
from pictor_billing.form_tokens import quote_digest
from pictor_billing.money import format_usd
from tokens.models import TopUp


def pay_context(request, quote, *, salt: str, purpose: str, next_url: str) -> dict:
    """The pay area's figures: the card, the digest of the quote on screen, a payment being confirmed.

    `next_url` is where "Add a card" brings the owner back to.
    """
    # The card and a payment being confirmed in one query (every keystroke in a modal asks again); the
    # payment itself is loaded only when there is one. Being confirmed: the newest of
    # attempts_unsettled(account, (purpose,)) whose status is unknown.
    unknown = (f"SELECT id FROM {PaymentAttempt._meta.db_table} WHERE account_id = %s AND purpose = %s "
               "AND status = %s ORDER BY created_at DESC, id DESC LIMIT 1")
    card, found = default_card_with(request.account, being_confirmed=(
        unknown, [request.account.pk, purpose, PaymentAttempt.UNKNOWN]))
    being_confirmed = (None if found["being_confirmed"] is None
                       else attempts_unsettled(request.account, (purpose,)).filter(pk=found["being_confirmed"]).first())
    return {
        "card": card, "card_expired": card is not None and card.is_expired(clock.today(request.account)),
        "digest": quote_digest(quote, account_id=request.account.pk, salt=salt) if quote is not None else "",
        "being_confirmed": being_confirmed, "pay_next": next_url,
    }


# What stops a payment short of completing, as the forms that take money show it.
REFUSALS = (OrderChanged, NoDefaultCard, PaymentDeclined, PaymentPending)


def payment_refusal(error: Exception, *, no_card: str, delivered: str) -> tuple[str, str, int]:
    """(error, notice, HTTP status) for a form whose payment did not complete.

    `no_card`: what to add a card for; `delivered`: what appears once a payment being confirmed is.
    """
    if isinstance(error, OrderChanged):
        total = f" It is now {format_usd(error.quote.total_due)}." if error.quote else ""
        return (f"The total changed since it was shown.{total} Nothing was charged: review it and pay again.",
                "", 409)
    if isinstance(error, NoDefaultCard):
        return f"Add a card before {no_card}. Nothing was charged.", "", 402
    if isinstance(error, PaymentDeclined):
        return f"{error.reason} Nothing was charged.", "", 402
    return "", (f"Your payment of {format_usd(error.attempt.amount)} is being confirmed with your bank. "
                f"{delivered} as soon as it is; nothing more will be charged."), 202


def to_confirm_page(request, attempt: PaymentAttempt):
    """Send the owner to confirm this payment in the browser."""
    url = reverse("billing:payment_confirm", args=[attempt.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def paid_message(recorded, attempt: PaymentAttempt | None) -> str:
    """What the owner is told once a purchase or top-up is complete: what, how much, on which card."""
    invoice = recorded.invoice
    if invoice.total and attempt is not None and attempt.card is not None:
        paid = f"{format_usd(invoice.total)} charged to {attempt.card.label}."
    elif invoice.total:
        paid = f"{format_usd(invoice.total)} charged."
    else:
        paid = "Nothing to pay: credit covered it."
    what = (f"Purchase complete: {invoice.description}." if isinstance(recorded, Purchase)
            else f"{recorded.tokens:,} tokens added.")
    return f"{what} {paid} Invoice {invoice.number} is on the Invoices tab."


def _renewal_confirmed(request, attempt: PaymentAttempt):
    renewal_charge_outcome(attempt)
    if attempt.status == PaymentAttempt.SUCCEEDED:
        messages.success(request, f"Paid: {format_usd(attempt.amount)} charged to {attempt.card.label}. Your "
                                  "licenses are active again.")
    else:
        messages.error(request, f"{attempt.failure_reason or 'The payment was not confirmed.'} Nothing was charged.")
    return redirect("licenses:list")


def _landing(recorded) -> str:
    return reverse("licenses:list") if isinstance(recorded, Purchase) else reverse("tokens:activity")


@require_http_methods(["GET", "POST"])
@account_required
def payment_confirm(request, pk):
    """Confirm a payment the card's bank wants authenticated (the sandbox's stand-in for 3-D Secure)."""
    attempt = get_object_or_404(PaymentAttempt.objects.select_related("card"), pk=pk, account=request.account)
    processor = get_gateway()
    in_browser = not hasattr(processor, "authenticate")  # Stripe: 3-D Secure by stripe.confirmCardPayment
    page = {"attempt": attempt}
    if in_browser and attempt.status == PaymentAttempt.REQUIRES_ACTION:
        page["stripe"] = {"publishable_key": settings.STRIPE_PUBLISHABLE_KEY, "js_url": settings.STRIPE_JS_URL,
                          "client_secret": attempt.processor_answer.get("client_secret", "")}
    if request.method == "POST" and attempt.status == PaymentAttempt.REQUIRES_ACTION:
        if request.POST.get("action") not in (("confirmed",) if in_browser else ("approve", "fail")):
            return TemplateResponse(request, "billing/payment_confirm.html", page, status=400)
        if not in_browser:
            processor.authenticate(processor_ref=attempt.processor_ref, approve=request.POST["action"] == "approve")
        # Whatever the browser says, the processor is asked how the payment stands.
        attempt = attempt_refresh(attempt)
        if attempt.status == PaymentAttempt.REQUIRES_ACTION:
            return TemplateResponse(request, "billing/payment_confirm.html", page, status=409)
        if attempt.purpose == PaymentAttempt.RENEWAL:
            return _renewal_confirmed(request, attempt)
        try:
            recorded = checkout_continue(attempt)
        except PaymentDeclined as declined:
            messages.error(request, f"{declined.reason} Nothing was charged.")
            return redirect("licenses:list" if attempt.purpose == PaymentAttempt.PURCHASE else "tokens:activity")
        except OrderChanged:
            messages.error(request, "The order changed while you were confirming, so nothing was charged. "
                                    "Review it and try again.")
            return redirect("licenses:list" if attempt.purpose == PaymentAttempt.PURCHASE else "tokens:activity")
        except (PaymentPending, PaymentNeedsAction):
            messages.info(request, "Your payment is being confirmed; nothing more will be charged.")
            return redirect("licenses:list")
        messages.success(request, paid_message(recorded, attempt))
        return redirect(_landing(recorded))
    if attempt.status != PaymentAttempt.REQUIRES_ACTION:
        # Confirmed already (a second tab, the back button): say how it stands instead of asking again.
        recorded = (Purchase.objects.filter(invoice=attempt.invoice).first()
                    or TopUp.objects.filter(invoice=attempt.invoice).first()) if attempt.invoice_id else None
        if recorded is not None:
            messages.info(request, f"This payment is already confirmed. {paid_message(recorded, attempt)}")
            return redirect(_landing(recorded))
        return TemplateResponse(request, "billing/payment_confirm.html", {"attempt": attempt, "settled": True},
                                status=409)
    return TemplateResponse(request, "billing/payment_confirm.html", page)
