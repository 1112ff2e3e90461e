"""An invoice's page in the finance area: lines, attempts, status history, credit notes, PDF."""

import datetime

from invoices.models import Invoice
from invoices.services import invoice_status_set
from tests.finance.helpers import attempt_make, clocked_account_make, invoice_make
from tests.helpers import text


def test_an_invoice_with_its_lines_attempts_history_and_credit_notes(finance_client, alice):
    invoice = invoice_make(alice.account, "99.00", kind=Invoice.RENEWAL, status=Invoice.OPEN,
                           issued_on=datetime.date(2026, 3, 1),
                           lines=[("item", "1 × Pro monthly", 1, "99.00", "99.00")])
    declined = attempt_make(invoice)
    paid = attempt_make(invoice, status="succeeded", failure_reason="")
    invoice_status_set(invoice=invoice, to_status=Invoice.PAID, reason="Charged", attempt_id=paid.pk)
    note = invoice_make(alice.account, "-20.00", kind=Invoice.CREDIT_NOTE, refers_to=invoice,
                        issued_on=datetime.date(2026, 3, 10), description="Credit for a cancelled license")
    body = text(finance_client.get(f"/finance/invoices/{invoice.number}/"))
    assert "1 × Pro monthly" in body
    assert f'data-attempt="{declined.pk}"' in body and f'data-attempt="{paid.pk}"' in body
    assert "Your card was declined." in body
    assert f"Charged (attempt #{paid.pk})" in body and 'data-status="paid"' in body
    assert note.number in body and "Credit for a cancelled license" in body
    assert f'href="/finance/invoices/{invoice.number}.pdf"' in body
    note_page = text(finance_client.get(f"/finance/invoices/{note.number}/"))
    assert "Credit note" in note_page and f'href="/finance/invoices/{invoice.number}/"' in note_page


def test_the_pdf_is_the_invoice_document(finance_client, alice):
    invoice = invoice_make(alice.account, "45.00", kind=Invoice.TOP_UP)
    response = finance_client.get(f"/finance/invoices/{invoice.number}.pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert response["Content-Disposition"] == f'attachment; filename="{invoice.number}.pdf"'
    assert "no-store" in response["Cache-Control"]


def test_unknown_and_test_account_invoices_are_not_found(finance_client, db):
    assert finance_client.get("/finance/invoices/PB-2026-999999/").status_code == 404
    hidden = invoice_make(clocked_account_make(), "10.00")
    assert hidden.number.startswith("PB-TEST-")
    assert finance_client.get(f"/finance/invoices/{hidden.number}/").status_code == 404
    assert finance_client.get(f"/finance/invoices/{hidden.number}.pdf").status_code == 404
