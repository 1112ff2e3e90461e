"""The Invoices tab and invoice PDF downloads (the account's users only; anyone else gets 404)."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from accounts.decorators import account_required
from invoices.links import number_link
from invoices.models import Invoice
from invoices.pdf import invoice_pdf_cached
from pictor_billing.htmx import render_htmx
from pictor_billing.paging import counted_page, with_total

PAGE_SIZE = 25


@require_GET
@account_required
def invoice_list(request):
    """The account's invoices, newest first, 25 a page."""
    # Only the columns the table shows: an invoice row has some twenty more.
    invoices = (Invoice.objects.filter(account=request.account).order_by("-issued_on", "-year", "-sequence")
                .only("number", "issued_on", "description", "total", "status"))
    counted = with_total(invoices)
    page = counted_page(request.GET.get("page"), PAGE_SIZE, count=invoices.count,
                        rows_from=lambda start: list(counted[start:start + PAGE_SIZE]))
    pdf_link = number_link("invoices:pdf")
    for invoice in page.object_list:
        invoice.pdf_link = pdf_link(invoice.number)
    return render_htmx(request, "invoices/list.html", {"page": page, "tab": "invoices"}, partial="table")


@require_GET
@account_required
def invoice_pdf_download(request, number):
    """The invoice as an A4 PDF (rendered once, then read from the cache: an issued invoice never changes)."""
    invoice = get_object_or_404(Invoice.objects.select_related("refers_to").prefetch_related("lines"), number=number,
                                account=request.account)
    response = HttpResponse(invoice_pdf_cached(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{invoice.filename}"'
    return response
