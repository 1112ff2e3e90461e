"""Invoices: numbered without gaps, never changed once issued, listed newest first, downloadable as PDF."""

import datetime
import re
import shutil
import subprocess
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from invoices.models import ImmutableError, Invoice, InvoiceLine
from invoices.services import invoice_issue
from pictor_billing.pricing import QuoteLine
from tests.conftest import logged_in
from tests.helpers import buy_directly, text

D = Decimal
PDFTOTEXT = "/usr/bin/pdftotext"


def today():
    return timezone.now().date()


def issue(account, total="10.00", *, kind=Invoice.TOP_UP, issued_on=None, description="Token top-up: Starter"):
    amount = D(total)
    return invoice_issue(
        account=account, kind=kind, description=description,
        lines=[QuoteLine("item" if amount >= 0 else "credit", description, 1, amount, amount)],
        subtotal=amount, discount_total=D("0"), credit_applied=D("0"), total=amount,
        status=Invoice.PAID if amount >= 0 else Invoice.CREDITED, issued_on=issued_on or today(),
    )


def pdf_text(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "invoice.pdf"
    path.write_bytes(pdf)
    return subprocess.run([PDFTOTEXT, "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


# Numbering ------------------------------------------------------------------------------------------


def test_invoice_numbers_run_without_gaps_across_accounts(prices, alice, charlie, alice_card):
    from tests.conftest import add_card

    add_card(charlie.account)
    year = today().year
    numbers = [buy_directly(alice.account, alice).invoice.number,
               buy_directly(charlie.account, charlie).invoice.number,
               issue(alice.account).number]
    assert numbers == [f"PB-{year}-000001", f"PB-{year}-000002", f"PB-{year}-000003"]
    assert list(Invoice.objects.order_by("sequence").values_list("sequence", flat=True)) == [1, 2, 3]


def test_each_year_starts_again_at_one(alice):
    assert issue(alice.account, issued_on=datetime.date(2026, 12, 31)).number == "PB-2026-000001"
    assert issue(alice.account, issued_on=datetime.date(2027, 1, 1)).number == "PB-2027-000001"
    assert issue(alice.account, issued_on=datetime.date(2026, 12, 31)).number == "PB-2026-000002"


def test_a_rolled_back_invoice_gives_its_number_back(alice):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            issue(alice.account, issued_on=datetime.date(2026, 5, 1))
            raise RuntimeError("the charge failed after the invoice was drafted")
    assert not Invoice.objects.exists()
    assert issue(alice.account, issued_on=datetime.date(2026, 5, 1)).number == "PB-2026-000001"


def test_an_invoice_whose_lines_do_not_add_up_is_never_issued(alice):
    with pytest.raises(ValueError, match="sum to its total"):
        invoice_issue(account=alice.account, kind=Invoice.TOP_UP, description="Broken",
                      lines=[QuoteLine("item", "Starter", 1, D("10.00"), D("10.00"))], subtotal=D("10.00"),
                      discount_total=D("0"), credit_applied=D("0"), total=D("9.99"), status=Invoice.PAID,
                      issued_on=datetime.date(2026, 5, 1))
    assert issue(alice.account, issued_on=datetime.date(2026, 5, 1)).number == "PB-2026-000001"


# Immutability ---------------------------------------------------------------------------------------


@pytest.fixture
def invoice(alice):
    return issue(alice.account, "45.00")


def test_an_issued_invoice_cannot_be_saved_again(invoice):
    invoice.total = D("0.01")
    with pytest.raises(ImmutableError):
        invoice.save()
    with pytest.raises(ImmutableError):
        invoice.save(update_fields=["total"])
    assert Invoice.objects.get(pk=invoice.pk).total == D("45.00")


def test_an_issued_invoice_cannot_be_deleted(invoice):
    with pytest.raises(ImmutableError):
        invoice.delete()
    with pytest.raises(ImmutableError):
        Invoice.objects.filter(pk=invoice.pk).delete()
    assert Invoice.objects.filter(pk=invoice.pk).exists()


@pytest.mark.parametrize("how", ["queryset update", "related manager update", "bulk_update", "select_for_update"])
def test_an_issued_invoice_cannot_be_changed_in_bulk(invoice, alice, how):
    with pytest.raises(ImmutableError), transaction.atomic():
        if how == "queryset update":
            Invoice.objects.filter(pk=invoice.pk).update(total=D("0.01"))
        elif how == "related manager update":
            alice.account.invoices.update(buyer_name="Someone else")
        elif how == "bulk_update":
            invoice.total = D("0.01")
            Invoice.objects.bulk_update([invoice], ["total"])
        else:
            Invoice.objects.select_for_update().filter(pk=invoice.pk).update(status=Invoice.VOID)
    stored = Invoice.objects.get(pk=invoice.pk)
    assert (stored.total, stored.buyer_name, stored.status) == (D("45.00"), "Alice Events", Invoice.PAID)


def test_an_issued_invoices_lines_cannot_be_changed_or_deleted(invoice):
    line = invoice.lines.get()
    line.amount = D("0.01")
    with pytest.raises(ImmutableError):
        line.save()
    with pytest.raises(ImmutableError):
        line.delete()
    with pytest.raises(ImmutableError):
        InvoiceLine.objects.filter(invoice=invoice).update(amount=D("0"))
    with pytest.raises(ImmutableError):
        invoice.lines.all().delete()
    assert InvoiceLine.objects.get(pk=line.pk).amount == D("45.00")


# The Invoices tab -----------------------------------------------------------------------------------


def numbers_on(body: str) -> list[str]:
    return re.findall(r"<td[^>]*>(PB-\d{4}-\d{6})</td>", body)


def test_the_invoices_tab_lists_newest_first_25_a_page(alice):
    year = today().year
    for _ in range(30):
        issue(alice.account)
    client = logged_in(alice)

    first = text(client.get("/billing/invoices/"))
    assert numbers_on(first) == [f"PB-{year}-{n:06d}" for n in range(30, 5, -1)]
    assert "Page 1 of 2" in first
    assert 'href="?page=2" rel="next"' in first
    assert 'rel="prev"' not in first

    second = text(client.get("/billing/invoices/?page=2"))
    assert numbers_on(second) == [f"PB-{year}-{n:06d}" for n in range(5, 0, -1)]
    assert "Page 2 of 2" in second
    assert 'href="?page=1" rel="prev"' in second


def test_an_older_issue_date_lists_below_a_newer_one(alice):
    older = issue(alice.account, issued_on=today() - datetime.timedelta(days=3))
    newer = issue(alice.account)
    body = text(logged_in(alice).get("/billing/invoices/"))
    assert numbers_on(body) == [newer.number, older.number]


@pytest.mark.parametrize("page", ["0", "99", "abc", "-1", "", "99999999999999999999", "2.5"])
def test_an_out_of_range_page_shows_a_real_page_not_an_error(alice, page):
    for _ in range(3):
        issue(alice.account)
    response = logged_in(alice).get(f"/billing/invoices/?page={page}")
    assert response.status_code == 200
    assert len(numbers_on(text(response))) == 3


def test_the_invoices_tab_pages_through_with_htmx_as_a_fragment(alice):
    for _ in range(26):
        issue(alice.account)
    response = logged_in(alice).get("/billing/invoices/?page=2", headers={"HX-Request": "true"})
    body = text(response)
    assert body.lstrip().startswith('<div id="invoice-table">')
    assert len(numbers_on(body)) == 1


def test_the_invoices_tab_runs_the_same_queries_for_three_or_thirty_invoices(alice, django_assert_num_queries):
    client = logged_in(alice)
    for _ in range(3):
        issue(alice.account)
    with CaptureQueriesContext(connection) as few:
        client.get("/billing/invoices/")
    for _ in range(27):
        issue(alice.account)
    with django_assert_num_queries(len(few.captured_queries)):
        client.get("/billing/invoices/")


def test_credit_invoices_are_shown_as_negative_amounts(alice):
    issue(alice.account, "-49.00", kind=Invoice.CREDIT_NOTE, description="Credit for cancelled license")
    issue(alice.account, "1490.00", kind=Invoice.PURCHASE, description="1 Premium license, annual")
    body = text(logged_in(alice).get("/billing/invoices/"))
    amounts = re.findall(r'<td class="num"[^>]*>([^<]*)</td>', body)
    assert "\u2212$49.00" in amounts
    assert "$1,490.00" in amounts
    assert "Credited" in body


def test_an_account_with_no_invoices_is_told_where_they_will_appear(alice):
    assert "No invoices yet." in text(logged_in(alice).get("/billing/invoices/"))


# PDF ------------------------------------------------------------------------------------------------


@pytest.fixture
def purchase_invoice(prices, alice, alice_card):
    return buy_directly(alice.account, alice, tier="premium", period="annual", quantity=2).invoice


def test_the_invoice_pdf_downloads_with_its_number_as_the_file_name(purchase_invoice, alice, tmp_path):
    response = logged_in(alice).get(f"/billing/invoices/{purchase_invoice.number}.pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert f'filename="{purchase_invoice.number}.pdf"' in disposition
    assert "no-store" in response["Cache-Control"]
    if not shutil.which(PDFTOTEXT):
        pytest.skip("pdftotext (poppler-utils) is not installed; the PDF's text was not checked")
    words = pdf_text(response.content, tmp_path)
    assert purchase_invoice.number in words
    assert "Alice Events" in words
    assert "Pictor Inc." in words
    assert "2 Premium licenses, annual" in words
    assert "$2,980.00" in words


def test_a_credit_invoice_pdf_says_total_credited(alice, tmp_path):
    credit = issue(alice.account, "-49.00", kind=Invoice.CREDIT_NOTE, description="Credit for cancelled license")
    response = logged_in(alice).get(f"/billing/invoices/{credit.number}.pdf")
    assert response.status_code == 200
    if not shutil.which(PDFTOTEXT):
        pytest.skip("pdftotext (poppler-utils) is not installed")
    words = pdf_text(response.content, tmp_path)
    assert "Total credited" in words
    assert "49.00" in words


def test_a_teammate_can_download_the_accounts_invoice(purchase_invoice, bob):
    response = logged_in(bob).get(f"/billing/invoices/{purchase_invoice.number}.pdf")
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF")


def test_another_account_gets_404_for_the_invoice_pdf(purchase_invoice, charlie):
    response = logged_in(charlie).get(f"/billing/invoices/{purchase_invoice.number}.pdf")
    assert response.status_code == 404
    assert not response.content.startswith(b"%PDF")


def test_an_unknown_invoice_number_is_not_found(alice):
    assert logged_in(alice).get("/billing/invoices/PB-2026-999999.pdf").status_code == 404
