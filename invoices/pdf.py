"""Invoice PDFs: the only module that imports WeasyPrint.

The HTML comes from templates/invoices/pdf.html, its stylesheet from templates/invoices/pdf.css;
fonts come from the system (DejaVu on Debian). The URL fetcher refuses every URL, so rendering
never touches the network.

Every PDF is a Factur-X / ZUGFeRD e-invoice: a PDF/A-3b with the EN 16931 XML of the same stored
figures (invoices/facturx.py) attached as factur-x.xml, its relationship "Data" (the XML and the
printed page say the same thing), and the Factur-X properties in its XMP metadata.

An issued document never changes, so its PDF is rendered once and then read from a cache folder
(`invoice_pdf_cached`; FINANCE_PDF_CACHE, default var/pdf-cache/), by the Billing tab, the finance
area and its zips alike. A file is named by the invoice number and a digest of everything the page
is made from (the stored figures and lines, the template, the stylesheet, the libraries' versions):
a database made again from scratch, which reuses numbers and ids, or a new template, never serves
a stale file. Each file is written whole to a temporary name, then renamed: a reader never sees
half a PDF, and two renderers at once are harmless.

Speed (bench/pdf.py measures it against a bare one-page render): each thread keeps one font
configuration and the parsed stylesheet, so fontconfig and Pango load the fonts and the CSS is
parsed once, not once per PDF; the stylesheet asks for a cheap layout (see its header); the XML's
schema is parsed once per thread (invoices/facturx.py); nothing is fetched, so no SSL context is
built. What is left is WeasyPrint laying out and drawing the page's text, about a millisecond a
table cell.
"""

import datetime
import functools
import hashlib
import importlib.metadata
import os
import tempfile
import threading
from pathlib import Path

from django.conf import settings
from django.template.loader import get_template, render_to_string

from invoices import facturx
from invoices.facturx import FILENAME, invoice_facturx_xml, xmp_add_facturx
from pictor_billing.money import format_usd

PDF_VARIANT = "pdf/a-3b"
TEMPLATE, STYLESHEET = "invoices/pdf.html", "invoices/pdf.css"
# Pango's font map is not thread-safe, and gunicorn's gthread workers render in several threads.
_thread = threading.local()


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


def _renderer():
    """This thread's WeasyPrint font configuration and parsed stylesheet, made on its first PDF.

    A fresh FontConfiguration per PDF (WeasyPrint's default) reloads fontconfig's configuration and
    makes Pango load and measure every font again: some 5-10 ms a PDF.
    """
    if not hasattr(_thread, "stylesheet"):
        from weasyprint import CSS
        from weasyprint.text.fonts import FontConfiguration

        _thread.font_config = FontConfiguration()
        _thread.stylesheet = CSS(string=_stylesheet_source(), url_fetcher=_no_fetch, font_config=_thread.font_config)
    return _thread


def _stylesheet_source() -> str:
    return get_template(STYLESHEET).template.source


def invoice_pdf(invoice) -> bytes:
    """Render an issued invoice or credit note to A4 PDF bytes, from its stored figures only.

    It shows no payment status, so the bytes for an issued invoice never change (the attachment's
    dates are the invoice's own, not the time of rendering).
    """
    from weasyprint import HTML, Attachment  # imported here: it loads Pango/HarfBuzz, which other pages never need

    renderer = _renderer()
    stored_lines = list(invoice.lines.all())
    lines = [{"line": line, "unit": format_usd(line.unit_price), "amount": format_usd(line.amount)}
             for line in stored_lines]
    html = render_to_string(TEMPLATE, {"invoice": invoice, "lines": lines, "total": format_usd(invoice.total)})
    issued_at = invoice.created_at.astimezone(datetime.UTC).replace(tzinfo=None)  # WeasyPrint writes it as UTC
    xml = Attachment(string=invoice_facturx_xml(invoice, lines=stored_lines), name=FILENAME,
                     description=f"Factur-X e-invoice (EN 16931) of {invoice.title.lower()} {invoice.number}",
                     relationship="Data", created=issued_at, modified=issued_at,
                     url_fetcher=_no_fetch)  # its default fetcher builds an SSL context: ~30 ms a PDF for nothing
    return HTML(string=html, url_fetcher=_no_fetch).write_pdf(
        stylesheets=[renderer.stylesheet], font_config=renderer.font_config, pdf_variant=PDF_VARIANT,
        attachments=[xml], finisher=_facturx_finish)


# --- the cache -------------------------------------------------------------------------------------

def cache_dir() -> Path:
    return Path(settings.FINANCE_PDF_CACHE)


@functools.cache
def _layout_version() -> str:
    """What every PDF is made with besides its invoice: the template, the stylesheet, this module and
    invoices/facturx.py (the XML), and the libraries' versions."""
    parts = [get_template(TEMPLATE).template.source, _stylesheet_source(), PDF_VARIANT,
             Path(__file__).read_text(), Path(facturx.__file__).read_text()]
    parts += [importlib.metadata.version(name) for name in ("weasyprint", "pydyf", "factur-x")]
    return "\x1f".join(parts)


def _digest(invoice) -> str:
    """A digest of everything the invoice's page and XML show: its stored fields (but the payment status,
    which neither shows), the invoice it corrects, its lines, and the layout version."""
    fields = [repr(getattr(invoice, field.attname)) for field in invoice._meta.concrete_fields
              if field.name != "status"]
    if invoice.refers_to_id:
        fields += [invoice.refers_to.number, repr(invoice.refers_to.issued_on)]
    fields += [repr((line.position, line.kind, line.description, line.quantity, line.unit_price, line.amount))
               for line in invoice.lines.all()]
    return hashlib.sha256("\x1e".join([_layout_version(), *fields]).encode()).hexdigest()[:24]


def cache_path(invoice) -> Path:
    return cache_dir() / f"{invoice.number}-{_digest(invoice)}.pdf"


def invoice_pdf_cached(invoice) -> bytes:
    """The invoice's PDF from the cache, or rendered once and cached (pass it with its lines prefetched)."""
    path = cache_path(invoice)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    pdf = invoice_pdf(invoice)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".rendering-", suffix=".pdf")
    with os.fdopen(handle, "wb") as file:
        file.write(pdf)
    os.replace(temporary, path)
    return pdf
