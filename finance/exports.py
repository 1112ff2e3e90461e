"""CSV exports of the invoice search, streamed row by row (never the whole set in memory), spreadsheet-safe.

A text cell a spreadsheet would read as a formula (starting with = + - @, a tab or a carriage
return) is prefixed with a single quote: an account named `=HYPERLINK(...)` stays text. Amounts
and dates are written by us as plain numbers and ISO dates, so they are left as they are (a
credit's −14.90 stays a number).
"""

import csv

from invoices.models import Invoice, InvoiceLine

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 2000

INVOICE_COLUMNS = ["number", "issued_on", "kind", "status", "account_id", "account", "billing_email",
                   "description", "subtotal", "discount_total", "credit_applied", "total", "currency", "refers_to"]
LINE_COLUMNS = ["number", "issued_on", "kind", "status", "account_id", "account", "position", "line_kind",
                "line_description", "quantity", "unit_price", "amount", "currency"]


def cell_safe(value) -> str:
    """A text cell as a spreadsheet will show it: never a formula."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file-like object whose write() returns the line: csv.writer then yields rows one by one."""

    def write(self, value):
        return value


def invoice_rows(invoices):
    """One row per invoice, header first; text cells made safe."""
    writer = csv.writer(_Echo())
    yield writer.writerow(INVOICE_COLUMNS)
    values = invoices.values_list("number", "issued_on", "kind", "status", "account_id", "buyer_name",
                                  "account__billing_email", "description", "subtotal", "discount_total",
                                  "credit_applied", "total", "currency", "refers_to__number")
    kinds, statuses = dict(Invoice.KIND_CHOICES), dict(Invoice.STATUS_CHOICES)
    for (number, issued_on, kind, status, account_id, name, email, description, subtotal, discount, credit,
         total, currency, refers_to) in values.iterator(chunk_size=CHUNK):
        yield writer.writerow([cell_safe(number), issued_on.isoformat(), kinds.get(kind, kind),
                               statuses.get(status, status), account_id, cell_safe(name), cell_safe(email),
                               cell_safe(description), subtotal, discount, credit, total, currency,
                               cell_safe(refers_to)])


def line_rows(invoices):
    """One row per invoice line (invoices in the search's order, lines in their order), header first."""
    writer = csv.writer(_Echo())
    yield writer.writerow(LINE_COLUMNS)
    order = [_line_order(field) for field in invoices.query.order_by]
    lines = InvoiceLine.objects.filter(invoice__in=invoices.order_by().values("pk")).order_by(*order, "position")
    values = lines.values_list("invoice__number", "invoice__issued_on", "invoice__kind", "invoice__status",
                               "invoice__account_id", "invoice__buyer_name", "position", "kind", "description",
                               "quantity", "unit_price", "amount", "invoice__currency")
    kinds, statuses = dict(Invoice.KIND_CHOICES), dict(Invoice.STATUS_CHOICES)
    for (number, issued_on, kind, status, account_id, name, position, line_kind, description, quantity, unit_price,
         amount, currency) in values.iterator(chunk_size=CHUNK):
        yield writer.writerow([cell_safe(number), issued_on.isoformat(), kinds.get(kind, kind),
                               statuses.get(status, status), account_id, cell_safe(name), position,
                               cell_safe(line_kind), cell_safe(description), quantity, unit_price, amount, currency])


def _line_order(field: str) -> str:
    """An invoice ordering field ("-issued_on", "pk") as the same ordering of its lines."""
    prefix, name = ("-", field[1:]) if field.startswith("-") else ("", field)
    return f"{prefix}invoice_id" if name == "pk" else f"{prefix}invoice__{name}"


def line_count(invoices) -> int:
    return InvoiceLine.objects.filter(invoice__in=invoices.order_by().values("pk")).count()
