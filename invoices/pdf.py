"""Invoice PDFs: the only module that imports WeasyPrint.

The HTML comes from templates/invoices/pdf.html with its CSS inline; fonts come
from the system (DejaVu on Debian). The URL fetcher refuses every URL, so
rendering never touches the network.
"""

from django.template.loader import render_to_string

from pictor_billing.money import format_usd


def _no_fetch(url, *args, **kwargs):
    raise ValueError(f"invoice PDFs load nothing from outside: {url}")


def invoice_pdf(invoice) -> bytes:
    """Render an issued invoice or credit note to A4 PDF bytes, from its stored figures only.

    It shows no payment status, so the bytes for an issued invoice never change.
    """
    from weasyprint import HTML  # imported here: it loads Pango/HarfBuzz, which other pages never need

    lines = [
        {"line": line, "unit": format_usd(line.unit_price), "amount": format_usd(line.amount)}
        for line in invoice.lines.all()
    ]
    html = render_to_string("invoices/pdf.html",
                            {"invoice": invoice, "lines": lines, "total": format_usd(invoice.total)})
    return HTML(string=html, url_fetcher=_no_fetch).write_pdf()
