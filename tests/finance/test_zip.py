"""The zip of PDFs: streamed entry by entry, each PDF cached by invoice; a large set goes through a task
and a progress page; every download is recorded."""

import io
import zipfile

from finance import views
from finance.models import ExportRecord, ZipJob
from tests.finance.helpers import invoice_make
from tests.helpers import HTMX, text

URL = "/finance/invoices/export.zip"


def entries(response) -> dict[str, bytes]:
    assert response.status_code == 200
    assert response.streaming and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="invoices-')
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    return {name: archive.read(name) for name in archive.namelist()}


def test_a_small_set_streams_at_once_and_each_pdf_is_cached(finance_client, finance_user, alice, charlie, renders,
                                                            pdf_cache):
    first = invoice_make(alice.account, "10.00")
    second = invoice_make(alice.account, "20.00")
    invoice_make(charlie.account, "30.00")
    files = entries(finance_client.get(URL, {"q": "Alice", "sort": "number"}))
    assert list(files) == [first.filename, second.filename]
    assert all(pdf.startswith(b"%PDF") for pdf in files.values())
    assert sorted(renders) == sorted([first.number, second.number])
    cached = sorted(path.name for path in pdf_cache.iterdir())  # one file per invoice, named by its number first
    assert [name.split("-")[:3] for name in cached] == [first.number.split("-"), second.number.split("-")]
    again = entries(finance_client.get(URL, {"q": "Alice", "sort": "number"}))
    assert again == files and len(renders) == 2  # the second zip reads the cache: nothing rendered again
    record = ExportRecord.objects.order_by("pk").first()
    assert (record.user, record.format, record.row_count, record.filters) == (
        finance_user, ExportRecord.PDF_ZIP, 2, {"q": "Alice"})


def test_a_large_set_is_rendered_by_a_task_behind_a_progress_page(finance_client, alice, monkeypatch,
                                                                 django_capture_on_commit_callbacks, renders):
    monkeypatch.setattr(views, "ZIP_DIRECT_LIMIT", 2)
    invoices = [invoice_make(alice.account, f"{n}.00") for n in range(1, 4)]
    with django_capture_on_commit_callbacks(execute=True):
        response = finance_client.get(URL, {"sort": "number"})
    job = ZipJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/finance/exports/zips/{job.pk}/"
    assert (job.total, job.done, job.ready) == (3, 3, True)  # the task ran (immediately, in the tests)
    assert len(renders) == 3
    page = text(finance_client.get(response["Location"]))
    assert "All 3 PDFs are ready." in page and "every 2s" not in page
    assert not ExportRecord.objects.exists()  # recorded when downloaded
    files = entries(finance_client.get(f"/finance/exports/zips/{job.pk}/download/"))
    assert list(files) == [invoice.filename for invoice in invoices]
    assert len(renders) == 3  # the download reads the cache
    assert ExportRecord.objects.get().row_count == 3


def test_an_unfinished_job_shows_its_progress_and_polls(finance_client, finance_user):
    job = ZipJob.objects.create(user=finance_user, total=200, done=50)
    page = text(finance_client.get(f"/finance/exports/zips/{job.pk}/"))
    assert 'data-done="50" data-total="200"' in page and "50 of 200 PDFs rendered (25%)" in page
    partial = text(finance_client.get(f"/finance/exports/zips/{job.pk}/", headers=HTMX))
    assert "<html" not in partial and 'hx-trigger="every 2s"' in partial
    assert finance_client.get(f"/finance/exports/zips/{job.pk}/download/").status_code == 404
