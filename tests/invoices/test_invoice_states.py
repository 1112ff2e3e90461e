"""An invoice's payment status and its credit notes: the status moves only through
`invoice_status_set`, along the moves the rules allow, and every move is recorded; the document itself
(lines, totals, PDF) never changes. Credit notes take numbers from the same gap-free sequence and
never add up to more than the invoice they correct."""

import datetime
import html
import re
import subprocess
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.models import User
from invoices.models import ImmutableError, Invoice, InvoiceSequence, InvoiceStatusChange
from invoices.pdf import invoice_pdf
from invoices.services import (
    CreditNoteRefused,
    InvoiceStatusRefused,
    credit_note_issue,
    credited_so_far,
    invoice_issue,
    invoice_status_set,
)
from licenses.models import Purchase
from payments.models import PaymentAttempt
from pictor_billing.money import format_usd
from pictor_billing.pricing import QuoteLine
from tests.conftest import logged_in
from tests.factories import CouponFactory
from tests.helpers import buy, buy_directly, clock_set, summary, text
from tests.invoices.test_invoices import PDFTOTEXT, issue

D = Decimal
# One fixed instant: the year of the numbers, "today" and the billing cycle cannot move under a test.
NOW = datetime.datetime(2026, 3, 10, 12, 0, tzinfo=datetime.UTC)
YEAR = NOW.year
# Words the PDF would use if it showed the payment status; it must not, so it never goes stale.
STATUS_WORDS = re.compile(r"\b(paid|open|failed|void|credited|status)\b", re.IGNORECASE)


def pdf_words(pdf: bytes, tmp_path, *, layout: bool = True) -> str:
    """The PDF's text, whitespace collapsed. As laid out, each label reads next to its value; in reading
    order (layout=False) a description that wraps in its cell reads whole."""
    path = tmp_path / "document.pdf"
    path.write_bytes(pdf)
    command = [PDFTOTEXT, *(["-layout"] if layout else []), str(path), "-"]
    return " ".join(subprocess.run(command, check=True, capture_output=True, text=True).stdout.split())


def issue_as(account, status, total="100.00", *, user=None):
    """An invoice issued straight into `status` (as a purchase, renewal or dunning run would issue it)."""
    amount = D(total)
    return invoice_issue(
        account=account, kind=Invoice.RENEWAL, description="1 Pro license, monthly",
        lines=[QuoteLine("item", "Pro license, monthly", 1, amount, amount)], subtotal=amount,
        discount_total=D("0"), credit_applied=D("0"), total=amount, status=status,
        issued_on=NOW.date(), user=user,
    )


def credit_line(amount, description="Refund: Pro license, monthly"):
    return QuoteLine("credit", description, 1, D(amount), D(amount))


# Refusals are tried as a view meets them: outside any transaction, so the refused service's own transaction
# rolls back and the test reads the books after it. (Inside the runner's per-test transaction, a service that
# opens no savepoint of its own would leave that transaction unusable after raising.)
REFUSALS = pytest.mark.django_db(transaction=True)


def history(invoice):
    return list(InvoiceStatusChange.objects.filter(invoice=invoice)
                .values_list("from_status", "to_status", "reason", "attempt_id", "changed_by_id"))


def status_of(invoice) -> str:
    return Invoice.objects.get(pk=invoice.pk).status


@pytest.fixture
def frozen(alice):
    clock_set(alice.account, NOW)
    return alice.account


# 1. The status moves through invoice_status_set only, and each move is recorded ---------------------


def test_a_purchase_invoice_reads_issued_open_then_paid_by_the_captured_attempt(prices, alice, alice_card, frozen):
    invoice = buy_directly(alice.account, alice).invoice
    attempt = PaymentAttempt.objects.get(invoice=invoice)
    assert (attempt.status, attempt.kind) == (PaymentAttempt.SUCCEEDED, PaymentAttempt.AUTHORIZE)

    issued, paid = InvoiceStatusChange.objects.filter(invoice=invoice).order_by("changed_at", "id")
    assert (issued.from_status, issued.to_status) == ("", Invoice.OPEN)
    assert "authorized" in issued.reason
    assert issued.attempt_id == attempt.pk  # the authorization the invoice was issued on
    assert (paid.from_status, paid.to_status, paid.attempt_id) == (Invoice.OPEN, Invoice.PAID, attempt.pk)
    assert paid.reason == "Paid: $99.00 by Visa ending 4242"
    assert issued.changed_at == paid.changed_at == NOW  # on the account's clock
    assert status_of(invoice) == Invoice.PAID
    assert str(issued) == f"{invoice.pk}: issued → open"


def test_a_zero_dollar_purchase_is_issued_paid_with_one_history_row_and_no_attempt(prices, alice, alice_card,
                                                                                  frozen):
    CouponFactory(code="FREE", kind="percent", value=D("100"))
    invoice = buy_directly(alice.account, alice, coupon_code="FREE").invoice

    assert (invoice.total, status_of(invoice)) == (D("0.00"), Invoice.PAID)
    assert history(invoice) == [("", Invoice.PAID, "Issued; nothing to charge", None, None)]
    assert not PaymentAttempt.objects.filter(account=alice.account).exists()


# 2. Allowed and refused moves -----------------------------------------------------------------------

ALLOWED = [(Invoice.OPEN, Invoice.PAID), (Invoice.OPEN, Invoice.FAILED), (Invoice.OPEN, Invoice.VOID),
           (Invoice.PAID, Invoice.CREDITED)]
REFUSED = [(Invoice.PAID, Invoice.OPEN), (Invoice.VOID, Invoice.PAID), (Invoice.FAILED, Invoice.PAID),
           (Invoice.CREDITED, Invoice.PAID), (Invoice.PAID, Invoice.VOID)]


@pytest.mark.parametrize(("from_status", "to_status"), ALLOWED, ids=[f"{a}-to-{b}" for a, b in ALLOWED])
def test_an_allowed_move_changes_the_status_and_records_who_why_and_when(alice, frozen, from_status, to_status):
    invoice = issue_as(alice.account, from_status)

    moved = invoice_status_set(invoice=invoice, to_status=to_status, reason="Support: checked with the bank",
                               user=alice)

    assert moved.status == status_of(invoice) == to_status
    assert history(invoice) == [("", from_status, "Issued", None, None),
                                (from_status, to_status, "Support: checked with the bank", None, alice.pk)]
    assert InvoiceStatusChange.objects.filter(invoice=invoice).last().changed_at == NOW
    stored = Invoice.objects.get(pk=invoice.pk)  # the document itself is as issued
    assert (stored.total, stored.number, stored.issued_on) == (invoice.total, invoice.number, invoice.issued_on)


@pytest.mark.parametrize(("from_status", "to_status"), REFUSED, ids=[f"{a}-to-{b}" for a, b in REFUSED])
@REFUSALS
def test_a_move_spec_does_not_allow_is_refused_and_changes_nothing(alice, frozen, from_status, to_status):
    invoice = issue_as(alice.account, from_status)
    before = history(invoice)

    with pytest.raises(InvoiceStatusRefused, match=f"{invoice.number} is {from_status}; it cannot become"):
        invoice_status_set(invoice=invoice, to_status=to_status, reason="Try anyway", user=alice)

    assert status_of(invoice) == from_status
    assert history(invoice) == before


@REFUSALS
def test_a_credited_invoice_reached_through_paid_cannot_be_paid_again(alice, frozen):
    invoice = issue_as(alice.account, Invoice.OPEN)
    invoice_status_set(invoice=invoice, to_status=Invoice.PAID, reason="Paid", attempt_id=7)
    invoice_status_set(invoice=invoice, to_status=Invoice.CREDITED, reason="Fully refunded")

    with pytest.raises(InvoiceStatusRefused):
        invoice_status_set(invoice=invoice, to_status=Invoice.PAID, reason="A late success", attempt_id=8)

    assert [(row[0], row[1], row[3]) for row in history(invoice)] == [
        ("", Invoice.OPEN, None), (Invoice.OPEN, Invoice.PAID, 7), (Invoice.PAID, Invoice.CREDITED, None)]
    assert status_of(invoice) == Invoice.CREDITED


def test_moving_to_the_status_it_already_has_is_a_no_op_with_no_new_history(alice, frozen):
    invoice = issue_as(alice.account, Invoice.OPEN)
    invoice_status_set(invoice=invoice, to_status=Invoice.PAID, reason="Paid", attempt_id=41)
    before = history(invoice)

    again = invoice_status_set(invoice=invoice, to_status=Invoice.PAID, reason="Paid (retried settle)",
                               attempt_id=41)

    assert again.status == status_of(invoice) == Invoice.PAID
    assert history(invoice) == before
    assert len(before) == 2


def test_a_generic_update_still_cannot_move_the_status(alice):
    invoice = issue_as(alice.account, Invoice.OPEN)
    with pytest.raises(ImmutableError):
        Invoice.objects.filter(pk=invoice.pk).update(status=Invoice.PAID)
    with pytest.raises(ImmutableError):
        alice.account.invoices.filter(status=Invoice.OPEN).update(status=Invoice.VOID)
    invoice.status = Invoice.PAID
    with pytest.raises(ImmutableError):
        invoice.save(update_fields=["status"])
    assert status_of(invoice) == Invoice.OPEN
    assert len(history(invoice)) == 1


def test_a_status_history_row_cannot_be_saved_again_or_deleted(alice):
    invoice = issue_as(alice.account, Invoice.OPEN)
    invoice_status_set(invoice=invoice, to_status=Invoice.PAID, reason="Paid", attempt_id=5)
    row = InvoiceStatusChange.objects.filter(invoice=invoice).last()

    row.reason = "Paid in cash"
    with pytest.raises(ImmutableError):
        row.save()
    with pytest.raises(ImmutableError):
        row.save(update_fields=["reason"])
    with pytest.raises(ImmutableError):
        row.delete()
    assert history(invoice)[-1] == (Invoice.OPEN, Invoice.PAID, "Paid", 5, None)


@pytest.mark.parametrize("how", ["queryset update", "queryset delete"])
def test_the_status_history_cannot_be_rewritten_or_erased_in_bulk_either(alice, how):
    invoice = issue_as(alice.account, Invoice.OPEN)
    invoice_status_set(invoice=invoice, to_status=Invoice.PAID, reason="Paid", attempt_id=5)
    before = history(invoice)
    rows = InvoiceStatusChange.objects.filter(invoice=invoice)
    with pytest.raises(ImmutableError):
        if how == "queryset update":
            rows.update(to_status=Invoice.VOID, reason="Never paid")
        else:
            rows.delete()
    assert history(invoice) == before


# 3. Credit notes ------------------------------------------------------------------------------------


def test_a_credit_note_takes_the_next_number_of_the_year_it_is_issued_in(alice, tmp_path):
    invoice = issue(alice.account, "100.00", issued_on=datetime.date(2026, 12, 30))
    assert invoice.number == "PB-2026-000001"
    clock_set(alice.account, datetime.datetime(2027, 1, 4, 9, 30, tzinfo=datetime.UTC))

    note = credit_note_issue(invoice=invoice, lines=[credit_line("-60.00"), credit_line("-15.50", "Goodwill credit")],
                             description="Credit for a cancelled license", reason="Refunded by support",
                             user=alice)

    assert (note.number, note.year, note.sequence, note.issued_on) == (
        "PB-2027-000001", 2027, 1, datetime.date(2027, 1, 4))
    assert InvoiceSequence.objects.get(year=2026).last_number == 1
    assert note.kind == Invoice.CREDIT_NOTE and note.is_credit_note
    assert note.total == sum(note.lines.values_list("amount", flat=True)) == D("-75.50")
    assert note.refers_to_id == invoice.pk
    assert status_of(note) == Invoice.CREDITED
    assert history(note) == [("", Invoice.CREDITED, "Refunded by support", None, alice.pk)]
    assert credited_so_far(invoice) == D("75.50")

    response = logged_in(alice).get(f"/billing/invoices/{note.number}.pdf")
    assert response.status_code == 200
    words = pdf_words(response.content, tmp_path)
    # Labels print in capitals (CSS text-transform); the words are the template's.
    assert words.lower().startswith("credit note credit note number pb-2027-000001 issue date january 4, 2027")
    assert "invoice number" not in words.lower()
    assert "corrects invoice pb-2026-000001 of december 30, 2026" in words.lower()
    assert "Total credited (USD) −$75.50" in words
    assert "Goodwill credit" in words
    assert not STATUS_WORDS.search(words.replace("Total credited", ""))


@REFUSALS
def test_credit_notes_never_add_up_to_more_than_the_invoice(alice, frozen):
    invoice = issue(alice.account, "100.00", issued_on=NOW.date())
    first = credit_note_issue(invoice=invoice, lines=[credit_line("-40.00")], description="Partial credit",
                              reason="Partial refund")
    second = credit_note_issue(invoice=invoice, lines=[credit_line("-35.00"), credit_line("-25.00")],
                               description="The rest", reason="Rest refunded")
    assert (first.number, second.number) == (f"PB-{YEAR}-000002", f"PB-{YEAR}-000003")
    assert credited_so_far(invoice) == invoice.total == D("100.00")

    with pytest.raises(CreditNoteRefused, match=r"has \$0.00 left to credit"):
        credit_note_issue(invoice=invoice, lines=[credit_line("-0.01")], description="One cent more",
                          reason="Too much")

    assert Invoice.objects.filter(refers_to=invoice).count() == 2
    assert credited_so_far(invoice) == D("100.00")
    assert InvoiceSequence.objects.get(year=YEAR).last_number == 3  # the refusal used no number
    assert issue(alice.account, issued_on=NOW.date()).number == f"PB-{YEAR}-000004"


@REFUSALS
def test_one_credit_note_for_more_than_the_invoice_is_refused(alice, frozen):
    invoice = issue(alice.account, "100.00", issued_on=NOW.date())
    with pytest.raises(CreditNoteRefused, match=r"has \$100.00 left to credit; \$100.01 is more than that"):
        credit_note_issue(invoice=invoice, lines=[credit_line("-100.01")], description="Too much", reason="x")
    assert Invoice.objects.count() == 1
    assert issue(alice.account, issued_on=NOW.date()).number == f"PB-{YEAR}-000002"


@pytest.mark.parametrize("lines", [[credit_line("10.00")], [credit_line("-20.00"), credit_line("5.00")], []],
                         ids=["a positive line", "a positive line among negative ones", "no lines"])
@REFUSALS
def test_a_credit_note_that_does_not_take_money_off_is_refused(alice, frozen, lines):
    invoice = issue(alice.account, "100.00", issued_on=NOW.date())
    with pytest.raises(CreditNoteRefused, match="its lines must be negative"):
        credit_note_issue(invoice=invoice, lines=lines, description="Not a credit", reason="x")
    assert Invoice.objects.count() == 1
    assert InvoiceSequence.objects.get(year=YEAR).last_number == 1


@REFUSALS
def test_a_credit_note_of_a_credit_note_is_refused(alice, frozen):
    invoice = issue(alice.account, "100.00", issued_on=NOW.date())
    note = credit_note_issue(invoice=invoice, lines=[credit_line("-10.00")], description="Credit", reason="x")
    with pytest.raises(CreditNoteRefused, match="not another credit note"):
        credit_note_issue(invoice=note, lines=[credit_line("-1.00")], description="Credit of a credit", reason="x")
    assert not Invoice.objects.filter(refers_to=note).exists()
    assert InvoiceSequence.objects.get(year=YEAR).last_number == 2


# 4. Two credit notes racing for one invoice (PostgreSQL) --------------------------------------------


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="the race needs PostgreSQL row locks (set DATABASE_URL=postgres://...)")
@pytest.mark.django_db(transaction=True)
def test_two_credit_notes_racing_for_one_invoice_never_credit_more_than_its_total(alice):
    from tests.concurrency.test_races import race  # the module skips itself on other databases

    clock_set(alice.account, NOW)
    invoice = issue(alice.account, "100.00", issued_on=NOW.date())

    def sixty_percent():
        return credit_note_issue(invoice=invoice, lines=[credit_line("-60.00")], description="Credit: 60%",
                                 reason="Partial refund")

    results = race(sixty_percent, sixty_percent, outcomes=(CreditNoteRefused,))

    issued = [result for result in results if isinstance(result, Invoice)]
    refused = [result for result in results if isinstance(result, CreditNoteRefused)]
    assert (len(issued), len(refused)) == (1, 1)
    assert "has $40.00 left to credit; $60.00 is more than that" in str(refused[0])
    assert credited_so_far(invoice) == D("60.00")
    numbers = list(Invoice.objects.order_by("sequence").values_list("number", flat=True))
    assert numbers == [f"PB-{YEAR}-000001", f"PB-{YEAR}-000002"]
    assert issued[0].number == f"PB-{YEAR}-000002"
    assert InvoiceSequence.objects.get(year=YEAR).last_number == 2


# 5. The PDF shows no payment status, so it never changes ---------------------------------------------


def test_the_invoice_pdf_shows_no_status_and_stays_the_same_as_the_status_moves(alice, frozen, tmp_path):
    invoice = issue_as(alice.account, Invoice.OPEN)
    renders = {}
    for to_status in (Invoice.PAID, Invoice.CREDITED):
        renders[status_of(invoice)] = invoice_pdf(Invoice.objects.get(pk=invoice.pk))
        invoice_status_set(invoice=invoice, to_status=to_status, reason="Moved", attempt_id=3)
    renders[status_of(invoice)] = invoice_pdf(Invoice.objects.get(pk=invoice.pk))
    assert list(renders) == [Invoice.OPEN, Invoice.PAID, Invoice.CREDITED]

    texts = {status: pdf_words(pdf, tmp_path) for status, pdf in renders.items()}
    assert texts[Invoice.OPEN] == texts[Invoice.PAID] == texts[Invoice.CREDITED]
    assert renders[Invoice.OPEN] == renders[Invoice.PAID] == renders[Invoice.CREDITED]
    words = texts[Invoice.CREDITED]
    assert invoice.number in words and "Total charged (USD) $100.00" in words
    assert not STATUS_WORDS.search(words), STATUS_WORDS.search(words)


# 6. The invoice's lines are the Order Summary's lines -------------------------------------------------

SUMMARY_ROW = re.compile(r'<tr class="line-[^"]*"><th scope="row">(.*?)</th>\s*'
                         r'<td class="amount"><data value="([^"]+)"', re.DOTALL)
SUMMARY_TOTAL = re.compile(r'<tr class="summary-total"><th scope="row">[^<]*</th>'
                           r'<td class="amount"><data value="([^"]+)" data-summary="total_due">')


def summary_lines(response) -> list[tuple[str, str, Decimal]]:
    """The Order Summary's lines: description, the "(quantity × unit price)" note if any, signed amount."""
    body = text(response)
    table = body[body.index('<table class="summary-lines">'):body.index("</table>")]
    rows = []
    for heading, amount in SUMMARY_ROW.findall(table):
        description, _, note = heading.partition(" <small>")
        rows.append((html.unescape(description).strip(), html.unescape(note.removesuffix("</small>")), D(amount)))
    return rows


def test_the_invoice_prints_exactly_the_lines_the_order_summary_showed(prices, alice, alice_card, frozen, tmp_path):
    buy_directly(alice.account, alice, quantity=3)  # 3 Pro monthly, today: the anchor is today, no pro-rata next
    client = logged_in(alice)

    shown = summary(client, period="monthly", tier="pro", quantity=2, coupon="")
    assert shown.status_code == 200
    lines_shown = summary_lines(shown)
    total_shown = D(SUMMARY_TOTAL.search(text(shown)).group(1))
    # 2 x $99.00; the 5th license reaches 10%: -$19.80; the 3 active ones move to 10% for their whole
    # period: 3 x $9.90 = -$29.70, used at once. $148.50 due.
    assert [(description, amount) for description, _, amount in lines_shown] == [
        ("Pro license, monthly", D("198.00")), ("Volume discount 10% (5 active licenses)", D("-19.80")),
        ("Volume discount adjustment: 3 active licenses move to 10% for the rest of their period", D("-29.70"))]
    assert total_shown == D("148.50")

    response = buy(client, period="monthly", tier="pro", quantity=2, coupon="")
    assert response.status_code == 302

    invoice = Purchase.objects.filter(account=alice.account).latest("created_at", "pk").invoice
    stored = list(invoice.lines.order_by("position").values_list("description", "amount"))
    assert stored == [(description, amount) for description, _, amount in lines_shown]
    notes = [f"({line.quantity} × {format_usd(line.unit_price)})" if line.quantity > 1 else ""
             for line in invoice.lines.order_by("position")]
    assert notes == [note for _, note, _ in lines_shown]
    assert invoice.total == total_shown == sum(amount for _, amount in stored)

    pdf = logged_in(alice).get(f"/billing/invoices/{invoice.number}.pdf").content
    reading = pdf_words(pdf, tmp_path, layout=False)
    for description, _ in stored:
        assert description in reading
    assert f"Total charged (USD) {format_usd(invoice.total)}" in pdf_words(pdf, tmp_path)


# 7. Admin ---------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(db):
    superuser = User.objects.create_superuser(email="root@pictor.example", password="x-Admin-secret-1")
    client = Client()
    client.force_login(superuser)
    return client


def test_the_admin_invoice_page_shows_the_status_history_and_no_way_to_change_it(prices, alice, alice_card,
                                                                                 frozen, admin_client):
    invoice = buy_directly(alice.account, alice).invoice
    attempt = PaymentAttempt.objects.get(invoice=invoice)
    url = reverse("admin:invoices_invoice_change", args=[invoice.pk])

    response = admin_client.get(url)
    assert response.status_code == 200
    body = text(response)
    group = body[body.index('id="status_changes-group"'):]
    group = group[:group.index("</fieldset>")]
    assert "Invoice status changes" in group
    rows = [dict(re.findall(r'<td class="field-(\w+)">\s*<p>(.*?)</p>', row, re.DOTALL))
            for row in group.split('<tr class="form-row')[1:]]
    shown = [(row["from_status"], row["to_status"], html.unescape(row["reason"]), row["attempt_id"]) for row in rows]
    assert shown == [
        ("-", "Open", "Issued; the card is authorized", str(attempt.pk)),
        ("open", "Paid", "Paid: $99.00 by Visa ending 4242", str(attempt.pk))]
    assert 'name="status_changes-MAX_NUM_FORMS" value="0"' in group  # no row can be added
    form = body[body.index('<form method="post" id="invoice_form"'):]
    form = form[:form.index("</form>")]
    assert "<button" not in form and 'type="submit"' not in form
    for control in ('name="_save"', 'name="_continue"', 'name="_addanother"', "<select", "<textarea",
                    'name="status_changes-0-reason"', 'name="status_changes-0-to_status"',
                    'name="status_changes-0-DELETE"'):
        assert control not in form, control
    assert not [tag for tag in re.findall(r"<input[^>]*>", form) if 'type="hidden"' not in tag]

    before = history(invoice)
    posted = admin_client.post(url, {"status": Invoice.VOID, "status_changes-TOTAL_FORMS": "2",
                                     "status_changes-INITIAL_FORMS": "2", "status_changes-0-to_status": "void",
                                     "status_changes-0-reason": "Rewritten", "_save": "Save"})
    assert posted.status_code == 403
    assert history(invoice) == before
    assert status_of(invoice) == Invoice.PAID
