"""Invoice PDFs: the only module that imports WeasyPrint.

The HTML comes from templates/invoices/pdf.html with its CSS inline; fonts come
from the system (DejaVu on Debian). The URL fetcher refuses every URL, so
rendering never touches the network.

Every PDF is a Factur-X / ZUGFeRD e-invoice: a PDF/A-3b with the EN 16931 XML of
the same stored figures (invoices/facturx.py) attached as factur-x.xml, its
relationship "Data" (the XML and the printed page say the same thing), and the
Factur-X properties in its XMP metadata.
"""

import datetime

from django.template.loader import render_to_string

from invoices.facturx import FILENAME, invoice_facturx_xml, xmp_add_facturx
from pictor_billing.money import format_usd

PDF_VARIANT = "pdf/a-3b"


def _no_fetch(url, *args, **kwargs):
    raise ValueError(f"invoice PDFs load nothing from outside: {url}")


def _facturx_finish(document, pdf) -> None:
    """Put the Factur-X parts in place just before the file is written (WeasyPrint's finisher hook).

    WeasyPrint 70 lists an attachment twice in the catalog's associated files (/AF), once from
    the names tree and once as a file spec: once is enough. Its custom-XMP option would put our
    properties in a second rdf:RDF; they go into its own instead.
    """
    catalog = pdf.catalog
    catalog["AF"][:] = list(dict.fromkeys(catalog["AF"]))
    metadata = pdf.objects[int(catalog["Metadata"].split()[0])]
    metadata.stream = [xmp_add_facturx(b"\n".join(metadata.stream))]


def invoice_pdf(invoice) -> bytes:
    """Render an issued invoice or credit note to A4 PDF bytes, from its stored figures only.

    It shows no payment status, so the bytes for an issued invoice never change (the attachment's
    dates are the invoice's own, not the time of rendering).
    """
    from weasyprint import HTML, Attachment  # imported here: it loads Pango/HarfBuzz, which other pages never need

    stored_lines = list(invoice.lines.all())
    lines = [{"line": line, "unit": format_usd(line.unit_price), "amount": format_usd(line.amount)}
             for line in stored_lines]
    html = render_to_string("invoices/pdf.html",
                            {"invoice": invoice, "lines": lines, "total": format_usd(invoice.total)})
    issued_at = invoice.created_at.astimezone(datetime.UTC).replace(tzinfo=None)  # WeasyPrint writes it as UTC
    xml = Attachment(string=invoice_facturx_xml(invoice, lines=stored_lines), name=FILENAME,
                     description=f"Factur-X e-invoice (EN 16931) of {invoice.title.lower()} {invoice.number}",
                     relationship="Data", created=issued_at, modified=issued_at,
                     url_fetcher=_no_fetch)  # its default fetcher builds an SSL context: ~30 ms a PDF for nothing
    return HTML(string=html, url_fetcher=_no_fetch).write_pdf(pdf_variant=PDF_VARIANT, attachments=[xml],
                                                              finisher=_facturx_finish)
