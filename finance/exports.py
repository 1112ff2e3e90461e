"""CSV exports of the invoice search, streamed (never the whole set in memory), spreadsheet-safe.

A text cell a spreadsheet would read as a formula (starting with = + - @, a tab or a carriage
return) is prefixed with a single quote: an account named `=HYPERLINK(...)` stays text. Amounts
and dates are written by us as plain numbers and ISO dates, so they are left as they are (a
credit's −14.90 stays a number).

The database does that work: the rows are selected with the cells already made safe and the
kinds and statuses already in words (`_safe`, `_label`), so on PostgreSQL the CSV is PostgreSQL's
own COPY … TO STDOUT (FORMAT csv), streamed as it comes in blocks of CHUNK_BYTES, and elsewhere
the same rows through Python's csv writer. One format either way: comma-separated, quoted when a
cell needs it, one line (LF) a row, the header first.
"""

import csv
import io

from django.db import connection
from django.db.models import Case, CharField, F, Func, Q, Value, When
from django.db.models.functions import Concat, Left
from django.db.models.lookups import In

from invoices.models import Invoice, InvoiceLine

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 2000  # rows a fetch (the Python writer's path)
CHUNK_BYTES = 64 * 1024  # bytes a chunk of the response

INVOICE_COLUMNS = ["number", "issued_on", "kind", "status", "account_id", "account", "billing_email",
                   "description", "subtotal", "discount_total", "credit_applied", "total", "currency", "refers_to"]
LINE_COLUMNS = ["number", "issued_on", "kind", "status", "account_id", "account", "position", "line_kind",
                "line_description", "quantity", "unit_price", "amount", "currency"]


def cell_safe(value) -> str:
    """A text cell as a spreadsheet will show it: never a formula. (`_safe` is the same rule, in SQL.)"""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _safe(field: str):
    """The text column `field` as `cell_safe` writes it, computed by the database."""
    return Case(When(In(Left(F(field), 1), list(FORMULA_STARTS)), then=Concat(Value("'"), F(field))),
                default=F(field), output_field=CharField())


def _label(field: str, choices):
    """A code column (kind, status) in words, as the page shows it."""
    return Case(*[When(Q(**{field: code}), then=Value(words)) for code, words in choices],
                default=F(field), output_field=CharField())


def _iso_date(field: str):
    """A date as YYYY-MM-DD whatever the server's DateStyle (PostgreSQL); elsewhere the date itself."""
    if connection.vendor == "postgresql":
        return Func(F(field), Value("YYYY-MM-DD"), function="to_char", output_field=CharField())
    return F(field)


def invoice_rows(invoices):
    """One row per invoice, header first, as chunks of CSV text."""
    values = invoices.annotate(
        csv_number=_safe("number"), csv_issued=_iso_date("issued_on"), csv_kind=_label("kind", Invoice.KIND_CHOICES),
        csv_status=_label("status", Invoice.STATUS_CHOICES), csv_account=_safe("buyer_name"),
        csv_email=_safe("account__billing_email"), csv_description=_safe("description"),
        csv_refers_to=_safe("refers_to__number"),
    ).values_list("csv_number", "csv_issued", "csv_kind", "csv_status", "account_id", "csv_account", "csv_email",
                  "csv_description", "subtotal", "discount_total", "credit_applied", "total", "currency",
                  "csv_refers_to")
    return _csv_chunks(INVOICE_COLUMNS, values)


def line_rows(invoices):
    """One row per invoice line (invoices in the search's order, lines in their order), header first."""
    order = [_line_order(field) for field in invoices.query.order_by]
    lines = InvoiceLine.objects.filter(invoice__in=invoices.order_by().values("pk")).order_by(*order, "position")
    values = lines.annotate(
        csv_number=_safe("invoice__number"), csv_issued=_iso_date("invoice__issued_on"),
        csv_kind=_label("invoice__kind", Invoice.KIND_CHOICES),
        csv_status=_label("invoice__status", Invoice.STATUS_CHOICES), csv_account=_safe("invoice__buyer_name"),
        csv_line_kind=_safe("kind"), csv_description=_safe("description"),
    ).values_list("csv_number", "csv_issued", "csv_kind", "csv_status", "invoice__account_id", "csv_account",
                  "position", "csv_line_kind", "csv_description", "quantity", "unit_price", "amount",
                  "invoice__currency")
    return _csv_chunks(LINE_COLUMNS, values)


def _csv_chunks(header: list[str], values):
    """The header, then the rows of `values` (already safe and in words), in chunks of about CHUNK_BYTES."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    yield text.getvalue().encode()
    if connection.vendor == "postgresql":
        yield from _copy_chunks(values)
        return
    text.seek(0)
    text.truncate()
    for row in values.iterator(chunk_size=CHUNK):
        writer.writerow(row)
        if text.tell() >= CHUNK_BYTES:
            yield text.getvalue().encode()
            text.seek(0)
            text.truncate()
    if text.tell():
        yield text.getvalue().encode()


def _copy_chunks(values):
    """The rows as PostgreSQL's COPY writes them in CSV, gathered into chunks of about CHUNK_BYTES (COPY
    sends a row a message: a response chunk each would be a write each)."""
    sql, params = values.query.sql_with_params()
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)", params) as copy:
        chunk = bytearray()
        for block in copy:
            chunk += block
            if len(chunk) >= CHUNK_BYTES:
                yield bytes(chunk)
                chunk.clear()
        if chunk:
            yield bytes(chunk)


def _line_order(field: str) -> str:
    """An invoice ordering field ("-issued_on", "pk") as the same ordering of its lines."""
    prefix, name = ("-", field[1:]) if field.startswith("-") else ("", field)
    return f"{prefix}invoice_id" if name == "pk" else f"{prefix}invoice__{name}"


def line_count(invoices) -> int:
    return InvoiceLine.objects.filter(invoice__in=invoices.order_by().values("pk")).count()
