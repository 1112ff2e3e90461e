"""Admin for licenses, the effective-dated price list, features and coupons."""

from django import forms
from django.contrib import admin

from licenses.models import (
    PERIOD_CHOICES,
    TIER_CHOICES,
    Coupon,
    EventLease,
    Feature,
    License,
    LicenseTerm,
    PriceListEntry,
    Purchase,
    RenewalGroup,
)
from pictor_billing import clock
from pictor_billing.admin import ReadOnlyAdmin, ReadOnlyInline


@admin.register(PriceListEntry)
class PriceListEntryAdmin(admin.ModelAdmin):
    """Effective-dated prices: a new entry replaces a price from its date on. An entry already in force
    is history (purchases were priced by it): it can be neither edited nor deleted; one still to come can."""

    list_display = ["tier", "period", "unit_price", "effective_from", "in_force"]
    list_filter = ["tier", "period"]
    date_hierarchy = "effective_from"
    actions = None  # no bulk delete: each entry is judged on its own date

    @admin.display(boolean=True, description="in force")
    def in_force(self, entry):
        return entry.effective_from <= clock.today()

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.effective_from <= clock.today():
            return ["tier", "period", "unit_price", "effective_from"]
        return []

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.effective_from <= clock.today():
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    list_display = ["name", "position", "in_basic", "in_pro", "in_premium", "on_card"]
    list_editable = ["position", "in_basic", "in_pro", "in_premium", "on_card"]


class CouponForm(forms.ModelForm):
    tiers = forms.MultipleChoiceField(choices=TIER_CHOICES, widget=forms.CheckboxSelectMultiple, required=False,
                                      help_text="None ticked: every tier.")
    periods = forms.MultipleChoiceField(choices=PERIOD_CHOICES, widget=forms.CheckboxSelectMultiple, required=False,
                                        help_text="None ticked: every period.")

    class Meta:
        model = Coupon
        fields = ["code", "kind", "value", "combines_with_volume", "starts_at", "expires_at", "max_redemptions",
                  "once_per_account", "tiers", "periods"]


@admin.register(Coupon)
class CouponAdmin(admin.ModelAdmin):
    form = CouponForm
    list_display = ["code", "kind", "value", "combines_with_volume", "starts_at", "expires_at", "max_redemptions",
                    "redeemed"]
    search_fields = ["code"]

    @admin.display(description="Redeemed")
    def redeemed(self, coupon):
        return coupon.redemptions.count()


class LicenseTermInline(ReadOnlyInline):
    """The license's paid periods: what it was, at what price and rate, what was paid, on which invoice."""

    model = LicenseTerm
    fields = ["kind", "starts_on", "ends_on", "tier", "period", "list_price", "rate", "paid", "invoice"]
    readonly_fields = fields


@admin.register(License)
class LicenseAdmin(ReadOnlyAdmin):
    """Read-only: a license's state, dates and price change only through the billing services (and,
    for support, through the support actions), never by editing or deleting its row."""

    list_display = ["id", "account", "tier", "period", "status", "cancel_at_period_end", "period_end", "purchased_on"]
    list_filter = ["status", "tier", "period", "cancel_at_period_end"]
    search_fields = ["account__name", "=id"]
    list_select_related = ["account"]
    fields = ["account", "purchase", "group", "tier", "period", "status", "cancel_at_period_end", "cancelled_at",
              "purchased_on", "period_start", "period_end", "ended_on", "list_price", "discount_rate", "created_at"]
    readonly_fields = fields
    inlines = [LicenseTermInline]


@admin.register(RenewalGroup)
class RenewalGroupAdmin(ReadOnlyAdmin):
    """What renews together: an account's monthly anchor group, or one annual purchase's licenses."""

    list_display = ["id", "account", "period", "anchor_on", "ended_on"]
    list_filter = ["period", ("ended_on", admin.EmptyFieldListFilter)]
    search_fields = ["account__name"]
    list_select_related = ["account"]


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "tier", "period", "quantity", "total_due", "invoice", "created_at"]
    list_select_related = ["account", "invoice"]


@admin.register(EventLease)
class EventLeaseAdmin(ReadOnlyAdmin):
    """Live and past events and the licenses they ran on (written only by the device API)."""

    list_display = ["event_id", "account", "license", "event_tier", "device_id", "started_at", "stopped_at"]
    list_filter = ["event_tier"]
    search_fields = ["event_id", "device_id", "account__name"]
    list_select_related = ["account", "license"]
