"""Tokens in the Billing area: Token activity (ledger, usage chart, settings); buying them is billing.views."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Max
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import account_required
from payments.services import NoDefaultCard
from pictor_billing.form_tokens import (
    unexpected_fields_error,
)
from pictor_billing.htmx import render_htmx
from tokens.chart import usage_chart
from tokens.forms import (
    SETTINGS_FIELDS,
    ActivityFilterForm,
    TokenSettingsForm,
)
from tokens.models import TokenEntry, TokenSettings
from tokens.services import token_settings_update

TOKEN_SALT = "tokens.top_up"
ESTIMATE_SALT = "tokens.estimate"
PAGE_SIZE = 25


# --- Token activity ---------------------------------------------------------------------------------

def _activity_context(request, settings_form=None, settings_error=""):
    account = request.account
    filters = ActivityFilterForm(request.GET)
    entries = TokenEntry.objects.filter(account=account).select_related("invoice").order_by("-id")
    if filters.is_valid():
        if kind := filters.cleaned_data["kind"]:
            entries = entries.filter(kind=kind)
        if event := filters.cleaned_data["event"]:
            entries = entries.filter(event_id=event)
    if settings_form is None:
        prefs = TokenSettings.objects.filter(account=account).first() or TokenSettings(account=account)
        settings_form = TokenSettingsForm(initial={
            "low_balance_threshold": prefs.low_balance_threshold, "auto_top_up": prefs.auto_top_up,
            "auto_top_up_threshold": prefs.auto_top_up_threshold,
            "auto_top_up_package": prefs.auto_top_up_package_id,
            "auto_top_up_monthly_limit": prefs.auto_top_up_monthly_limit})
    recent_events = (TokenEntry.objects.filter(account=account).exclude(event_id="").values("event_id")
                     .annotate(last=Max("id")).order_by("-last").values_list("event_id", flat=True)[:50])
    return {
        "tab": "tokens", "filters": filters, "filtered": filters.is_valid() and any(filters.cleaned_data.values()),
        "page": Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page")),
        "chart": usage_chart(account), "recent_events": recent_events,
        "settings_form": settings_form, "settings_error": settings_error,
    }


@require_GET
@account_required
def activity(request):
    """Token activity: the ledger newest first (filtered, 25 a page), usage per day, and the token settings."""
    context = _activity_context(request)
    status = 200 if context["filters"].is_valid() else 400
    return render_htmx(request, "tokens/activity.html", context, partial="ledger", status=status)


@require_POST
@account_required
def settings_update(request):
    """Save the low-balance alert and auto top-up settings."""
    form = TokenSettingsForm(request.POST)
    if tampered := unexpected_fields_error(request.POST, SETTINGS_FIELDS):
        return _settings_failed(request, form, tampered)
    if not form.is_valid():
        return _settings_failed(request, form, "Please correct the highlighted settings. Nothing was saved.")
    try:
        prefs = token_settings_update(account=request.account, **form.cleaned_data)
    except NoDefaultCard as no_card:
        return _settings_failed(request, form, f"{no_card} Nothing was saved.")
    state = (f"Auto top-up is on: {prefs.auto_top_up_package.name} below {prefs.auto_top_up_threshold:,} tokens."
             if prefs.auto_top_up else "Auto top-up is off.")
    messages.success(request, f"Token settings saved. {state}")
    return redirect(reverse("tokens:activity") + "#token-settings")


def _settings_failed(request, form, error):
    context = _activity_context(request, settings_form=form, settings_error=error)
    return TemplateResponse(request, "tokens/activity.html", context, status=400)
