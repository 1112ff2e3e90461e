"""Admin for tokens: packages, output rates and settings (editable); the ledger and top-ups (read-only),
with an "Adjust tokens" page where staff grant or deduct tokens with a reason."""

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from pictor_billing import clock
from pictor_billing.admin import ReadOnlyAdmin
from tokens.forms import OutputRateForm, TokenAdjustForm
from tokens.models import OutputRate, TokenEntry, TokenPackage, TokenSettings, TopUp
from tokens.services import InsufficientTokens, token_balance, tokens_adjust


@admin.register(TokenPackage)
class TokenPackageAdmin(admin.ModelAdmin):
    list_display = ["name", "tokens", "price", "position", "is_active"]
    list_editable = ["position", "is_active"]


@admin.register(OutputRate)
class OutputRateAdmin(admin.ModelAdmin):
    """Effective-dated rates: a new row changes the rate from its moment on; rows already in force stay as they
    were, so past usage keeps the rate it was charged at."""

    form = OutputRateForm
    list_display = ["output_type", "tokens", "effective_from", "in_force_since"]
    list_filter = ["output_type"]
    ordering = ["output_type", "-effective_from"]

    @admin.display(boolean=True, description="started")
    def in_force_since(self, rate):
        return rate.effective_from <= clock.now()

    def get_changeform_initial_data(self, request):
        return {"effective_from": clock.now(), **super().get_changeform_initial_data(request)}

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.effective_from <= clock.now():
            return False  # already applied to usage: add a new rate instead
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.effective_from <= clock.now():
            return False
        return super().has_delete_permission(request, obj)


@admin.register(TokenSettings)
class TokenSettingsAdmin(admin.ModelAdmin):
    list_display = ["account", "low_balance_threshold", "auto_top_up", "auto_top_up_threshold",
                    "auto_top_up_package", "auto_top_up_monthly_limit", "auto_top_up_failure"]
    list_filter = ["auto_top_up"]
    search_fields = ["account__name"]
    list_select_related = ["account", "auto_top_up_package"]
    readonly_fields = ["low_balance_alerted"]


@admin.register(TokenEntry)
class TokenEntryAdmin(ReadOnlyAdmin):
    list_display = ["account", "kind", "amount", "balance_after", "note", "event_id", "invoice", "created_by",
                    "created_at"]
    list_filter = ["kind"]
    search_fields = ["account__name", "event_id", "note"]
    list_select_related = ["account", "invoice", "created_by"]
    change_list_template = "tokens/admin/tokenentry_change_list.html"

    def get_urls(self):
        adjust = path("adjust/", self.admin_site.admin_view(self.adjust_view), name="tokens_tokenentry_adjust")
        return [adjust, *super().get_urls()]

    def adjust_view(self, request):
        """Grant or deduct tokens for one account, with a required reason; the entry records who did it."""
        if not request.user.has_perm("tokens.add_tokenentry"):
            raise PermissionDenied
        form = TokenAdjustForm(request.POST or None, initial={"account": request.GET.get("account")})
        if request.method == "POST" and form.is_valid():
            account, amount = form.cleaned_data["account"], form.cleaned_data["amount"]
            try:
                entry = tokens_adjust(account=account, amount=amount, reason=form.cleaned_data["reason"],
                                      user=request.user)
            except InsufficientTokens:
                form.add_error("amount", f"{account} has {token_balance(account)} tokens: a deduction of "
                                         f"{-amount} would take the balance below zero. Nothing was changed.")
            else:
                messages.success(request, f"{'Granted' if amount > 0 else 'Deducted'} {abs(amount)} tokens "
                                          f"{'to' if amount > 0 else 'from'} {account}. "
                                          f"The balance is now {entry.balance_after}.")
                return redirect(f"{reverse('admin:tokens_tokenentry_changelist')}?{urlencode({'q': account.name})}")
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "title": "Adjust tokens"}
        return TemplateResponse(request, "tokens/admin/adjust.html", context, status=400 if form.errors else 200)


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdmin):
    list_display = ["account", "package", "automatic", "tokens", "invoice", "created_at"]
    list_filter = ["automatic"]
    list_select_related = ["account", "package", "invoice"]
