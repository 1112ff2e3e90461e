"""Admin for licenses, the effective-dated price list, features and coupons."""

from django import forms
from django.contrib import admin

from licenses.models import PERIOD_CHOICES, TIER_CHOICES, Coupon, EventLease, Feature, License, PriceListEntry, Purchase
from pictor_billing.admin import ReadOnlyAdmin


@admin.register(PriceListEntry)
class PriceListEntryAdmin(admin.ModelAdmin):
    list_display = ["tier", "period", "unit_price", "effective_from"]
    list_filter = ["tier", "period"]
    date_hierarchy = "effective_from"

    def get_readonly_fields(self, request, obj=None):
        # A price already in force is history: add a new entry with a later date instead.
        if obj is not None:
            return ["tier", "period", "unit_price", "effective_from"]
        return []


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


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    list_display = ["id", "account", "tier", "period", "status", "cancel_at_period_end", "period_end", "purchased_on"]
    list_filter = ["status", "tier", "period", "cancel_at_period_end"]
    search_fields = ["account__name", "=id"]
    list_select_related = ["account"]
    raw_id_fields = ["account", "purchase"]
    # Money-bearing fields change only through the billing services.
    readonly_fields = ["account", "purchase", "tier", "period", "purchased_on", "period_start", "period_end",
                       "list_price", "discount_rate", "cancelled_at", "created_at"]

    def has_add_permission(self, request):
        return False


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
