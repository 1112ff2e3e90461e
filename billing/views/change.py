"""Change plan: the modal for one license or several selected on the Licenses tab.

An upgrade's summary is rendered by the server on every change (credit for the unused share, the
new charge, credit applied, total) and carries the signed digest of what it shows; paying charges
only that. A downgrade is scheduled for the billing date with no money moving, and can be undone
from the license's row until then.
"""

from django.contrib import messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from accounts.decorators import account_required
from billing.changes import DIGEST_SALT, change_quote, license_upgrade
from billing.checkout import PaymentNeedsAction
from billing.views.paying import REFUSALS, pay_context, payment_refusal, to_confirm_page
from licenses.forms import CHANGE_FIELDS, ChangeForm
from licenses.models import PlanChange
from licenses.services import ChangeRefused, change_refusal, license_change_schedule, prices_in_force
from payments.models import PaymentAttempt
from pictor_billing import clock, pricing
from pictor_billing.form_tokens import form_token_new, form_token_nonce, unexpected_fields_error
from pictor_billing.htmx import render_htmx
from pictor_billing.money import format_usd

TOKEN_SALT = "licenses.change"


def _suggested(licenses) -> tuple[str, str]:
    """What the modal opens on: the next tier up at the same period, else annual, else the top."""
    lic = licenses[0]
    rank = pricing.TIERS.index(lic.tier)
    if rank + 1 < len(pricing.TIERS):
        return pricing.TIERS[rank + 1], lic.period
    return lic.tier, pricing.ANNUAL if lic.period == pricing.MONTHLY else lic.period


class Plan:
    """What the chosen change is for the licenses on screen: an upgrade's quote, a downgrade's date, or why not."""

    def __init__(self, request, form):
        self.quote, self.refusal, self.downgrade, self.list_price, self.switching = None, "", [], None, False
        if not form.is_valid():
            return
        data, licenses = form.cleaned_data, list(form.cleaned_data["license"])
        directions = {pricing.change_direction(lic.tier, lic.period, data["tier"], data["period"]) for lic in licenses}
        if pricing.DOWN in directions and len(licenses) > 1:
            self.refusal = ("A downgrade takes effect at each license's billing date: schedule it for one license "
                            "at a time.")
        elif directions == {pricing.DOWN}:
            self.downgrade = licenses
            self.refusal = change_refusal(licenses[0], clock.today(request.account)) or ""
            self.list_price = prices_in_force(clock.today(request.account)).get((data["tier"], data["period"]))
        else:
            switching = [lic for lic in licenses if lic.period != data["period"]]
            self.switching, self.mixed = bool(switching), 0 < len(switching) < len(licenses)
            self.one_date = len({lic.period_end for lic in licenses}) == 1
            self.switch_renews_on = pricing.add_years(clock.today(request.account), 1)
            try:
                self.quote = change_quote(account=request.account, license_ids=[lic.pk for lic in licenses],
                                          tier=data["tier"], period=data["period"])
            except ChangeRefused as refused:
                self.refusal = str(refused)


def _context(request, form, plan, error="", notice=""):
    return {
        "form": form, "plan": plan, "quote": plan.quote, "error": error, "notice": notice, "tab": "licenses",
        "tiers": pricing.TIERS, "tier_labels": pricing.TIER_LABELS, "periods": pricing.PERIODS,
        "licenses": list(form.cleaned_data["license"]) if form.is_valid() else _posted_licenses(form),
        **pay_context(request, plan.quote, salt=DIGEST_SALT, purpose=PaymentAttempt.CHANGE,
                      next_url=reverse("licenses:list")),
    }


def _posted_licenses(form):
    try:
        return list(form.fields["license"].queryset.filter(pk__in=[int(pk) for pk in form.data.getlist("license")]))
    except (ValueError, TypeError, AttributeError):
        return []


def _fresh(request, data):
    data = data.copy()
    data["token"] = form_token_new(account_id=request.account.pk, salt=TOKEN_SALT)
    return data


@require_http_methods(["GET", "POST"])
@account_required
def license_change(request):
    """Change plan: the modal (HTMX) or page (no JavaScript) for the licenses chosen; POST makes the change."""
    if request.method == "POST":
        return _change(request)
    data = _fresh(request, request.GET)
    form = ChangeForm(data, account=request.account)
    form.is_valid()
    if "license" not in form.errors and not (request.GET.get("tier") and request.GET.get("period")):
        data["tier"], data["period"] = _suggested(list(form.cleaned_data["license"]))
        form = ChangeForm(data, account=request.account)
    if "license" in form.errors:
        messages.error(request, form.errors["license"][0])
        return redirect("licenses:list") if not request.htmx else HttpResponseClientRedirect(reverse("licenses:list"))
    return render_htmx(request, "licenses/change.html", _context(request, form, Plan(request, form)), partial="modal")


def _change(request):
    form = ChangeForm(request.POST, account=request.account)
    if tampered := unexpected_fields_error(request.POST, CHANGE_FIELDS):
        return _form(request, form, tampered, status=400)
    if "preview" in request.POST:
        return _form(request, form, status=200 if form.is_valid() else 400)
    if not form.is_valid():
        return _form(request, form, "Please correct the highlighted choices. Nothing was changed or charged.",
                     status=400)
    nonce = form_token_nonce(form.cleaned_data["token"], account_id=request.account.pk, salt=TOKEN_SALT)
    done = PlanChange.objects.filter(token=nonce, account=request.account).select_related("invoice").first()
    if done is not None:  # the same form again (a double click, the back button): nothing more
        return _already_made(request, done)
    plan = Plan(request, form)
    if plan.refusal:
        return _form(request, form, f"{plan.refusal} Nothing was changed or charged.", status=409)
    if plan.downgrade:  # refused above when it cannot change now
        return _schedule(request, form, plan.downgrade)
    if nonce is None:
        form = ChangeForm(_fresh(request, request.POST), account=request.account)
        return _form(request, form, "This form has expired. Review the change and try again.", status=400)
    data = form.cleaned_data
    try:
        change, created = license_upgrade(
            account=request.account, user=request.user, token=nonce, license_ids=[lic.pk for lic in data["license"]],
            tier=data["tier"], period=data["period"], shown_digest=request.POST.get("quote", ""))
    except ChangeRefused as refused:
        return _form(request, form, f"{refused} Nothing was charged.", status=409)
    except PaymentNeedsAction as needs:
        return to_confirm_page(request, needs.attempt)
    except REFUSALS as refused:
        error, notice, status = payment_refusal(refused, no_card="upgrading", delivered="Your licenses change")
        return _form(request, form, error, status=status, notice=notice)
    if not created:
        return _already_made(request, change)
    messages.success(request, change_message(change))
    return _to_list(request)


def _to_list(request):
    return HttpResponseClientRedirect(reverse("licenses:list")) if request.htmx else redirect("licenses:list")


def _already_made(request, change):
    messages.info(request, f"This change was already made (invoice {change.invoice.number}). Nothing more was charged.")
    return _to_list(request)


def change_message(change) -> str:
    """What the owner is told once an upgrade is complete: what, how much, on which card, which invoice."""
    invoice = change.invoice
    attempt = invoice.payment_attempts.filter(kind=PaymentAttempt.AUTHORIZE).select_related("card").first()
    if invoice.total and attempt is not None and attempt.card is not None:
        paid = f"{format_usd(invoice.total)} charged to {attempt.card.label}."
    else:
        paid = "Nothing to pay: credit covered it."
    return (f"Upgrade complete: {invoice.description}, from today. {paid} "
            f"Invoice {invoice.number} is on the Invoices tab.")


def _schedule(request, form, licenses):
    data = form.cleaned_data
    lic = licenses[0]
    try:
        lic = license_change_schedule(account=request.account, license=lic, tier=data["tier"], period=data["period"])
    except ChangeRefused as refused:
        return _form(request, form, f"{refused} Nothing was changed.", status=409)
    messages.success(request, f"License #{lic.pk} will renew as {lic.renews_as_label} on "
                              f"{pricing.day_words(lic.period_end)}. Until then it keeps its tier and live events; "
                              "you can undo this from its row.")
    return _to_list(request)


def _form(request, form, error="", *, status, notice=""):
    if not form.data.get("token"):
        form = ChangeForm(_fresh(request, form.data), account=request.account)
    context = _context(request, form, Plan(request, form), error, notice)
    return render_htmx(request, "licenses/change.html", context, partial="change_form", status=status)


@require_http_methods(["POST"])
@account_required
def change_summary(request):
    """The change's summary with its pay (or schedule) button, re-rendered by the server on every choice."""
    form = ChangeForm(request.POST, account=request.account)
    plan = Plan(request, form)
    ok = plan.quote is not None or (bool(plan.downgrade) and not plan.refusal)
    response = TemplateResponse(request, "licenses/change.html#summary", _context(request, form, plan),
                                status=200 if ok else 400)
    patch_vary_headers(response, ("HX-Request",))
    return response

