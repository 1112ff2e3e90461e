"""Admin for cards, charges and the credit ledger (all read-only)."""

from django.contrib import admin

from payments.models import Card, Charge, CreditEntry
from pictor_billing.admin import ReadOnlyAdmin


@admin.register(Card)
class CardAdmin(ReadOnlyAdmin):
    list_display = ["account", "brand", "last4", "exp_month", "exp_year", "is_default", "gateway", "created_at"]
    list_select_related = ["account"]
    search_fields = ["account__name", "last4"]


@admin.register(Charge)
class ChargeAdmin(ReadOnlyAdmin):
    list_display = ["account", "amount", "card", "description", "gateway_ref", "created_at"]
    list_select_related = ["account", "card"]
    search_fields = ["account__name", "gateway_ref"]


@admin.register(CreditEntry)
class CreditEntryAdmin(ReadOnlyAdmin):
    list_display = ["account", "kind", "amount", "invoice", "note", "created_by", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["account", "invoice", "created_by"]
