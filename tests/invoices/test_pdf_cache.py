"""Issued invoices' PDFs are rendered once and then served from the cache (they never change), on the
Billing tab as in the finance area; a different document, even under a reused number, never gets
another's file."""

import shutil

import pytest

from invoices import pdf as invoice_pdfs
from invoices.models import Invoice
from invoices.services import invoice_status_set
from tests.conftest import logged_in
from tests.finance.helpers import finance_user_make, invoice_make
from tests.invoices.test_invoices import PDFTOTEXT, issue, pdf_text


def download(client, url):
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    return response.content


def test_the_billing_tab_renders_an_invoice_pdf_once_then_serves_the_cached_file(alice, renders, pdf_cache):
    invoice = issue(alice.account, "45.00")
    client = logged_in(alice)
    first = download(client, f"/billing/invoices/{invoice.number}.pdf")
    assert first.startswith(b"%PDF") and renders == [invoice.number]
    assert download(client, f"/billing/invoices/{invoice.number}.pdf") == first
    assert renders == [invoice.number]  # the second download read the cache
    (cached,) = pdf_cache.iterdir()
    assert cached.name.startswith(f"{invoice.number}-") and cached.read_bytes() == first


def test_the_finance_area_and_the_billing_tab_share_one_cached_file(alice, renders, pdf_cache):
    invoice = issue(alice.account, "45.00")
    from_billing = download(logged_in(alice), f"/billing/invoices/{invoice.number}.pdf")
    from_finance = download(logged_in(finance_user_make()), f"/finance/invoices/{invoice.number}.pdf")
    assert from_finance == from_billing and renders == [invoice.number]
    assert len(list(pdf_cache.iterdir())) == 1


def test_a_payment_status_move_keeps_the_cached_pdf(alice, renders):
    invoice = invoice_make(alice.account, "45.00", status=Invoice.OPEN)
    client = logged_in(alice)
    first = download(client, f"/billing/invoices/{invoice.number}.pdf")
    invoice_status_set(invoice=invoice, to_status=Invoice.PAID, reason="Paid on retry")
    assert download(client, f"/billing/invoices/{invoice.number}.pdf") == first  # the PDF shows no status
    assert renders == [invoice.number]


@pytest.mark.skipif(not shutil.which(PDFTOTEXT), reason="pdftotext (poppler-utils) is not installed")
def test_a_database_made_again_with_the_same_number_and_id_never_gets_the_old_file(alice, renders, tmp_path):
    invoice = Invoice.objects.prefetch_related("lines").get(pk=issue(alice.account, "45.00").pk)
    invoice_pdfs.invoice_pdf_cached(invoice)
    # The same number and id, another buyer: what a database seeded again from scratch would hold.
    again = Invoice.objects.prefetch_related("lines").get(pk=invoice.pk)
    again.buyer_name = "Someone Else Ltd"
    assert invoice_pdfs.cache_path(again) != invoice_pdfs.cache_path(invoice)
    assert "Someone Else Ltd" in pdf_text(invoice_pdfs.invoice_pdf_cached(again), tmp_path)
    assert renders == [invoice.number, invoice.number]
