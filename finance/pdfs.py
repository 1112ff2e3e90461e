"""The zip of PDFs for the finance area, streamed with zipstream-ng, each PDF read from the cache (or
rendered and cached, invoices.pdf.invoice_pdf_cached) as its turn comes, so the set is never in memory."""

from zipstream import ZIP_STORED, ZipStream

from invoices.pdf import invoice_pdf_cached

CHUNK = 100


def _pdf_data(invoice):
    """The PDF as the zip's entry asks for it: only then rendered or read."""
    yield invoice_pdf_cached(invoice)


def zip_chunks(invoices):
    """The invoices' PDFs as one zip, generated entry by entry (PDFs are compressed already: stored as they are).

    One entry is queued at a time, so memory holds one PDF, whatever the number of invoices.
    """
    archive = ZipStream(compress_type=ZIP_STORED)
    for invoice in invoices.select_related("refers_to").prefetch_related("lines").iterator(chunk_size=CHUNK):
        archive.add(_pdf_data(invoice), invoice.filename)
        yield from archive.all_files()
    yield from archive.footer()
