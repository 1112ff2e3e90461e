"""The invoice search's table body, built in Python as Django admin builds its change list's rows.

A page is 50 rows of a dozen cells each: as template variables, each resolved, localized and escaped in
turn, they were two thirds of the search page's rendering. Here each row is one f-string of the row's
values, every value escaped (the standard library's `html.escape`, which Django's `escape` wraps); the
template prints the finished body. The markup is the same the
template had, cell for cell: the column headings stay in templates/finance/invoices.html, in this order.
"""

from html import escape

from django.utils.safestring import SafeString, mark_safe

from invoices.links import number_link
from invoices.models import Invoice
from pictor_billing.money import format_usd
from pictor_billing.pricing import day_words

# What a row shows, in this order (finance.search reads only these columns).
ROW_FIELDS = ("number", "issued_on", "kind", "status", "total", "account__name")

KIND_LABELS = {kind: escape(label) for kind, label in Invoice.KIND_CHOICES}
STATUS_LABELS = {status: escape(label) for status, label in Invoice.STATUS_CHOICES}


def invoice_rows_html(rows) -> SafeString:
    """The `<tr>`s of these rows (tuples of ROW_FIELDS); links from one reverse each.

    Every value is escaped: the labels once, at import; the number and the account's name (the only text
    a person typed) per row; the rest are dates and amounts this code formats.
    """
    link, pdf_link = number_link("finance:invoice"), number_link("finance:pdf")
    html = []
    for number, issued, kind, status, total, account in rows:
        number = escape(number)
        html.append(
            f'<tr data-number="{number}">'
            f'<td data-label="Number"><a href="{link(number)}">{number}</a></td>'
            f'<td data-label="Issued"><time datetime="{issued.isoformat()}">{day_words(issued)}</time></td>'
            f'<td data-label="Account">{escape(account)}</td>'
            f'<td data-label="Kind">{KIND_LABELS.get(kind) or escape(kind)}</td>'
            f'<td data-label="Status"><span class="status status-{escape(status)}">'
            f'{STATUS_LABELS.get(status) or escape(status)}</span></td>'
            f'<td class="num" data-label="Amount">{format_usd(total)}</td>'
            f'<td><a href="{pdf_link(number)}" download aria-label="Download PDF of {number}">PDF</a></td>'
            '</tr>')
    return mark_safe("\n".join(html))
