"""Admin for accounts, their users and their device API keys."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import Account, ApiKey, User
from pictor_billing.admin import ReadOnlyAdmin


class UserInline(admin.TabularInline):
    model = User
    fields = ["email", "first_name", "last_name", "is_active"]
    extra = 0
    show_change_link = True


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "city", "country", "monthly_anchor_day", "created_at"]
    search_fields = ["name", "users__email", "vat_id"]
    readonly_fields = ["monthly_anchor_day", "created_at"]
    inlines = [UserInline]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "account", "is_staff", "is_active"]
    search_fields = ["email", "account__name"]
    list_select_related = ["account"]
    fieldsets = [
        (None, {"fields": ["email", "password", "account"]}),
        ("Personal info", {"fields": ["first_name", "last_name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Important dates", {"fields": ["last_login", "date_joined", "email_verified_at"]}),
    ]
    readonly_fields = ["email_verified_at"]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "account", "password1", "password2"]})]


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    """Read-only: owners create and revoke keys in the Billing area. The hash is never shown."""

    list_display = ["name", "prefix", "account", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "account__name"]
    list_select_related = ["account"]
    fields = ["name", "prefix", "account", "created_by", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
