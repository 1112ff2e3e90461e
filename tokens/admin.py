"""Admin for token packages (editable) and the token ledger (read-only)."""

from django.contrib import admin

from pictor_billing.admin import ReadOnlyAdmin
from tokens.models import TokenEntry, TokenPackage, TopUp


@admin.register(TokenPackage)
class TokenPackageAdmin(admin.ModelAdmin):
    list_display = ["name", "tokens", "price", "position", "is_active"]
    list_editable = ["position", "is_active"]


@admin.register(TokenEntry)
class TokenEntryAdmin(ReadOnlyAdmin):
    list_display = ["account", "kind", "amount", "note", "invoice", "created_at"]
    list_filter = ["kind"]
    search_fields = ["account__name"]
    list_select_related = ["account", "invoice"]


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdmin):
    list_display = ["account", "package", "tokens", "invoice", "created_at"]
    list_select_related = ["account", "package", "invoice"]
