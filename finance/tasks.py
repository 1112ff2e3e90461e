"""The finance area's background task: render and cache the PDFs of a large zip export."""

from django.tasks import task

from finance.models import ZipJob
from finance.pdfs import CHUNK
from finance.search import InvoiceSearchForm, invoices_filtered
from invoices.pdf import invoice_pdf_cached
from pictor_billing import clock

PROGRESS_EVERY = 10  # PDFs between two progress writes


def job_invoices(job: ZipJob):
    """The invoices of a zip job: its recorded filter and sort, as the search reads them."""
    return invoices_filtered(InvoiceSearchForm({**job.filters, "sort": job.sort}))


@task
def zip_job_render_task(job_id: int) -> dict:
    """Render (or find cached) every PDF of the job, writing its progress as it goes; safe to run again."""
    job = ZipJob.objects.get(pk=job_id)
    done = 0
    try:
        for invoice in job_invoices(job).select_related("refers_to").prefetch_related("lines").iterator(
                chunk_size=CHUNK):
            invoice_pdf_cached(invoice)
            done += 1
            if done % PROGRESS_EVERY == 0:
                ZipJob.objects.filter(pk=job.pk).update(done=done)
    except Exception as error:
        ZipJob.objects.filter(pk=job.pk).update(done=done, error=str(error)[:300], finished_at=clock.now())
        raise
    ZipJob.objects.filter(pk=job.pk).update(done=done, total=done, finished_at=clock.now())
    return {"rendered": done}
