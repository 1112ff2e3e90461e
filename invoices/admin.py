"""Admin for invoices: read-only, with a link to each PDF."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from invoices.models import Invoice, InvoiceLine, InvoiceStatusChange
from invoices.pdf import invoice_pdf
from pictor_billing.admin import ReadOnlyAdmin, ReadOnlyInline


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = ["position", "description", "quantity", "unit_price", "amount"]
    readonly_fields = fields


class StatusChangeInline(ReadOnlyInline):
    """The invoice's status history: every move, when, why, and the payment attempt behind it."""

    model = InvoiceStatusChange
    fields = ["changed_at", "from_status", "to_status", "reason", "attempt_id", "changed_by"]
    readonly_fields = fields


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ["number", "kind", "issued_on", "buyer_name", "description", "total", "status", "pdf_link"]
    list_filter = ["status", "kind", "year"]
    search_fields = ["number", "buyer_name", "account__name"]
    date_hierarchy = "issued_on"
    readonly_fields = ["pdf_link"]
    inlines = [InvoiceLineInline, StatusChangeInline]

    @admin.display(description="PDF")
    def pdf_link(self, invoice):
        return format_html('<a href="{}">{}</a>', reverse("admin:invoices_invoice_pdf", args=[invoice.pk]),
                           invoice.filename)

    def get_urls(self):
        return [path("<int:pk>/pdf/", self.admin_site.admin_view(self.pdf_view), name="invoices_invoice_pdf"),
                *super().get_urls()]

    def pdf_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        invoice = get_object_or_404(Invoice, pk=pk)
        response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice.filename}"'
        return response
