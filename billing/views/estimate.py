"""Estimate an event: tokens needed against the balance, and the cheapest package mix to buy in one go."""

from django.contrib import messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from accounts.decorators import account_required
from billing.checkout import OrderChanged, PaymentNeedsAction, PaymentPending
from billing.top_up import ESTIMATE_DIGEST_SALT, tokens_top_up_mix
from billing.views.paying import paid_message, pay_context, to_confirm_page
from payments.models import PaymentAttempt
from payments.services import NoDefaultCard, PaymentDeclined
from pictor_billing import pricing
from pictor_billing.form_tokens import form_token_new, form_token_nonce, form_with_fresh_token, unexpected_fields_error
from pictor_billing.htmx import render_htmx
from pictor_billing.money import format_usd
from pictor_billing.redirects import safe_next_url
from tokens.forms import ESTIMATE_FIELDS, EstimateForm, per_guest_field_name
from tokens.models import TopUp
from tokens.services import event_estimate

ESTIMATE_SALT = "tokens.estimate"


ESTIMATE_DEFAULTS = {"guests": 100, per_guest_field_name("ai_image"): 1}


def _estimate_context(request, form, error="", notice=""):
    estimate = None
    if form.is_valid():
        estimate = event_estimate(account=request.account, guests=form.cleaned_data["guests"],
                                  outputs_per_guest=form.outputs_per_guest)
    quote = estimate.quote if estimate else None
    return {"form": form, "estimate": estimate, "error": error, "notice": notice, "next": safe_next_url(request),
            "tab": "tokens",
            **pay_context(request, quote, salt=ESTIMATE_DIGEST_SALT, purpose=PaymentAttempt.TOP_UP,
                          next_url=reverse("billing:estimate"))}


@require_http_methods(["GET", "POST"])
@account_required
def estimate(request):
    """Estimate an event: the modal (HTMX) or a page (no JavaScript); POST tops up the suggested mix."""
    if request.method == "POST":
        return _estimate_top_up(request)
    data = request.GET.copy() if "guests" in request.GET else ESTIMATE_DEFAULTS.copy()
    data["token"] = form_token_new(account_id=request.account.pk, salt=ESTIMATE_SALT)
    form = EstimateForm(data)
    context = _estimate_context(request, form)
    return render_htmx(request, "tokens/estimate.html", context, partial="modal",
                       status=200 if context["estimate"] else 400)


@require_http_methods(["GET", "POST"])
@account_required
def estimate_result(request):
    """The estimate fragment, re-rendered by the server on every change in the estimator."""
    context = _estimate_context(request, EstimateForm(request.POST if request.method == "POST" else request.GET))
    response = TemplateResponse(request, "tokens/estimate.html#result", context,
                                status=200 if context["estimate"] else 400)
    patch_vary_headers(response, ("HX-Request",))
    return response


def _estimate_top_up(request):
    form = EstimateForm(request.POST)
    if tampered := unexpected_fields_error(request.POST, ESTIMATE_FIELDS):
        return _estimate_failed(request, form, tampered, 400)
    if "preview" in request.POST:  # "Update estimate" (or Enter): show the estimate again, buy nothing
        context = _estimate_context(request, form)
        return render_htmx(request, "tokens/estimate.html", context, partial="estimate_form",
                           status=200 if context["estimate"] else 400)
    if not form.is_valid():
        return _estimate_failed(request, form, "Please correct the highlighted fields. Nothing was charged.", 400)
    nonce = form_token_nonce(form.cleaned_data["token"], account_id=request.account.pk, salt=ESTIMATE_SALT)
    if nonce is None:
        return _estimate_failed(request, form, "This form has expired. Review the estimate and try again.", 400,
                                fresh_token=True)
    # Answered before re-estimating: once this form's top-up is done the balance covers the event,
    # and a repeated post must say "already completed", not "nothing to buy".
    if done := TopUp.objects.filter(account=request.account, token=nonce).select_related("invoice").first():
        messages.info(request, f"This top-up was already completed (invoice {done.invoice.number}). "
                               "Nothing more was charged.")
        return _estimate_done(request)
    # The mix is worked out again here from the posted guests and outputs, never taken from the form.
    plan = event_estimate(account=request.account, guests=form.cleaned_data["guests"],
                          outputs_per_guest=form.outputs_per_guest)
    if not plan.mix:
        error = ("Your balance already covers this event. Nothing was charged." if not plan.shortfall
                 else "No token packages are on sale right now. Nothing was charged.")
        return _estimate_failed(request, form, error, 409)
    try:
        result, created = tokens_top_up_mix(account=request.account, items=list(plan.mix), token=nonce,
                                            shown_digest=request.POST.get("quote", ""),
                                            digest_salt=ESTIMATE_DIGEST_SALT)
    except OrderChanged:
        # Booths spent tokens (or prices changed) since the button was drawn: show the new
        # figure rather than charge an amount the person never saw.
        return _estimate_failed(request, form, f"The estimate changed since you saw it: the top-up now costs "
                                               f"{format_usd(plan.quote.total_due)}. Nothing was charged.", 409)
    except NoDefaultCard:
        return _estimate_failed(request, form, "Add a card before topping up. Nothing was charged.", 402)
    except PaymentDeclined as declined:
        return _estimate_failed(request, form, f"{declined.reason} Nothing was charged.", 402)
    except pricing.PricingError:
        return _estimate_failed(request, form, "These packages cannot be bought right now. Nothing was charged.",
                                409)
    except PaymentNeedsAction as needs:
        return to_confirm_page(request, needs.attempt)
    except PaymentPending as pending:
        return _estimate_failed(request, form, "", 202, notice=(
            f"Your payment of {format_usd(pending.attempt.amount)} is being confirmed with your bank. The tokens "
            "are added as soon as it is; nothing more will be charged."))
    if created:
        messages.success(request, paid_message(result, result.invoice.payment_attempts.first()))
    else:
        messages.info(request, f"This top-up was already completed (invoice {result.invoice.number}).")
    return _estimate_done(request)


def _estimate_done(request):
    target = safe_next_url(request) or reverse("tokens:activity")
    return HttpResponseClientRedirect(target) if request.htmx else redirect(target)


def _estimate_failed(request, form, error, status, fresh_token=False, notice=""):
    if fresh_token or not form.data.get("token"):
        form = form_with_fresh_token(form, account_id=request.account.pk, salt=ESTIMATE_SALT)
    return render_htmx(request, "tokens/estimate.html", _estimate_context(request, form, error, notice),
                       partial="estimate_form", status=status)
