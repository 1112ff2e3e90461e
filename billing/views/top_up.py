"""Top Up: choose a package, see what it costs, and pay; the tokens are credited at once with an
invoice of their own. The summary and its pay button follow the chosen package, and paying
charges only the order on screen (the same digest mechanism as the purchase modal)."""

from django.contrib import messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts.decorators import account_required
from billing.checkout import PaymentNeedsAction
from billing.top_up import TOP_UP_DIGEST_SALT, tokens_top_up
from billing.views.paying import REFUSALS, paid_message, pay_context, payment_refusal, to_confirm_page
from payments.models import PaymentAttempt
from pictor_billing.form_tokens import form_token_new, form_token_nonce, form_with_fresh_token, unexpected_fields_error
from pictor_billing.htmx import render_htmx
from pictor_billing.redirects import safe_next_url
from tokens.forms import ALLOWED_FIELDS, TopUpForm
from tokens.services import top_up_quote

TOKEN_SALT = "tokens.top_up"


def _context(request, form, error="", notice=""):
    packages = [(package, top_up_quote(account=request.account, package=package))
                for package in form.fields["package"].queryset]
    chosen = form.cleaned_data["package"] if form.is_bound and form.is_valid() else None
    quote = next((quote for package, quote in packages if package == chosen), None)
    next_url = safe_next_url(request)
    return {"form": form, "packages": packages, "quote": quote, "error": error, "notice": notice, "next": next_url,
            **pay_context(request, quote, salt=TOP_UP_DIGEST_SALT, purpose=PaymentAttempt.TOP_UP,
                          next_url=next_url or reverse("licenses:list"))}


@require_http_methods(["GET", "POST"])
@account_required
def top_up(request):
    """Choose a package and pay; the tokens are credited at once with an invoice of their own."""
    if request.method == "GET":
        first = TopUpForm.base_fields["package"].queryset.first()
        form = TopUpForm({"token": form_token_new(account_id=request.account.pk, salt=TOKEN_SALT),
                          "package": first.pk if first else ""})
        return render_htmx(request, "tokens/top_up.html", _context(request, form), partial="modal")
    form = TopUpForm(request.POST)
    if tampered := unexpected_fields_error(request.POST, ALLOWED_FIELDS):
        return _form(request, form, tampered, 400)
    if "preview" in request.POST:  # "Update summary" (or Enter): show the price again, buy nothing
        return _form(request, form, status=200 if form.is_valid() else 400)
    if not form.is_valid():
        return _form(request, form, "Choose a package. Nothing was charged.", 400)
    nonce = form_token_nonce(form.cleaned_data["token"], account_id=request.account.pk, salt=TOKEN_SALT)
    if nonce is None:
        return _form(request, form, "This form has expired. Choose the package again.", 400, fresh_token=True)
    try:
        result, created = tokens_top_up(account=request.account, package=form.cleaned_data["package"], token=nonce,
                                        shown_digest=request.POST.get("quote", ""))
    except PaymentNeedsAction as needs:
        return to_confirm_page(request, needs.attempt)
    except REFUSALS as refused:
        error, notice, status = payment_refusal(refused, no_card="topping up", delivered="The tokens are added")
        return _form(request, form, error, status, notice=notice)
    if created:
        messages.success(request, paid_message(result, result.invoice.payment_attempts.first()))
    else:
        messages.info(request, f"This top-up was already completed (invoice {result.invoice.number}). "
                               "Nothing more was charged.")
    target = safe_next_url(request) or reverse("licenses:list")
    return HttpResponseClientRedirect(target) if request.htmx else redirect(target)


def _form(request, form, error="", status=200, fresh_token=False, notice=""):
    if fresh_token or not form.data.get("token"):
        form = form_with_fresh_token(form, account_id=request.account.pk, salt=TOKEN_SALT)
    return render_htmx(request, "tokens/top_up.html", _context(request, form, error, notice), partial="top_up_form",
                       status=status)


@require_POST
@account_required
def top_up_summary(request):
    """What the chosen package costs, with its pay button; re-rendered on every change of package."""
    form = TopUpForm(request.POST)
    context = _context(request, form)
    response = TemplateResponse(request, "tokens/top_up.html#top_up_summary", context,
                                status=200 if context["quote"] is not None else 400)
    patch_vary_headers(response, ("HX-Request",))
    return response
