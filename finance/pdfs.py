"""PDFs for the finance area: cached by invoice (an issued invoice's PDF never changes, SPEC "Invoices"),
and streamed as one zip with zipstream-ng, each PDF rendered (or read from the cache) as its turn comes,
so the set is never in memory.

The cache is a folder of files (FINANCE_PDF_CACHE, default var/pdf-cache/), each named by the invoice's
number and id (a database made again from scratch reuses numbers, never both). A file is written whole
to a temporary name, then renamed: a reader never sees half a PDF, and two renderers at once are harmless.
"""

import os
import tempfile
from pathlib import Path

from django.conf import settings
from zipstream import ZIP_STORED, ZipStream

from invoices.pdf import invoice_pdf

CHUNK = 100


def cache_dir() -> Path:
    return Path(getattr(settings, "FINANCE_PDF_CACHE", None) or Path(settings.BASE_DIR) / "var" / "pdf-cache")


def cache_path(invoice) -> Path:
    return cache_dir() / f"{invoice.number}-{invoice.pk}.pdf"


def is_cached(invoice) -> bool:
    return cache_path(invoice).exists()


def cached_pdf(invoice) -> bytes:
    """The invoice's PDF, from the cache, or rendered once and cached."""
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


def _pdf_data(invoice):
    """The PDF as the zip's entry asks for it: only then rendered or read."""
    yield cached_pdf(invoice)


def zip_chunks(invoices):
    """The invoices' PDFs as one zip, generated entry by entry (PDFs are compressed already: stored as they are).

    One entry is queued at a time, so memory holds one PDF, whatever the number of invoices.
    """
    archive = ZipStream(compress_type=ZIP_STORED)
    for invoice in invoices.prefetch_related("lines").iterator(chunk_size=CHUNK):
        archive.add(_pdf_data(invoice), invoice.filename)
        yield from archive.all_files()
    yield from archive.footer()
