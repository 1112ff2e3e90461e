"""Admin for cards, payment attempts and the credit ledger: all read-only (money moves only through services)."""

from django.contrib import admin

from payments.models import Card, CreditEntry, PaymentAttempt
from pictor_billing.admin import ReadOnlyAdmin


@admin.register(Card)
class CardAdmin(ReadOnlyAdmin):
    list_display = ["account", "brand", "last4", "exp_month", "exp_year", "is_default", "gateway", "created_at",
                    "removed_at"]
    list_filter = [("removed_at", admin.EmptyFieldListFilter)]
    list_select_related = ["account"]
    search_fields = ["account__name", "last4"]

    def get_queryset(self, request):
        return Card.all_objects.select_related("account")  # removed cards too: attempts name them


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(ReadOnlyAdmin):
    """Every call that moved (or tried to move) money, with the processor's answer; kept for ever."""

    list_display = ["id", "account", "purpose", "kind", "amount", "status", "card", "invoice", "processor_ref",
                    "created_at"]
    list_filter = ["status", "purpose", "kind", "gateway"]
    list_select_related = ["account", "card", "invoice"]
    search_fields = ["account__name", "processor_ref", "idempotency_key", "invoice__number"]
    fields = ["account", "purpose", "kind", "amount", "currency", "status", "failure_reason", "card", "invoice",
              "refund_of", "description", "off_session", "gateway", "processor_ref", "processor_answer",
              "idempotency_key", "order", "order_recorded_at", "created_at", "updated_at"]
    readonly_fields = fields


@admin.register(CreditEntry)
class CreditEntryAdmin(ReadOnlyAdmin):
    list_display = ["account", "kind", "amount", "invoice", "note", "created_by", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["account", "invoice", "created_by"]
