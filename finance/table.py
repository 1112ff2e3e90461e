"""The invoice search's markup that is built in Python, as Django admin builds its change list's rows:
the table body and the filter fields.

A page is 50 rows of a dozen cells each: as template variables, each resolved, localized and escaped in
turn, they were two thirds of the search page's rendering. Here each row is one f-string of the row's
values, every value escaped (the standard library's `html.escape`, which Django's `escape` wraps); the
template prints the finished body. The markup is the same the
template had, cell for cell: the column headings stay in templates/finance/invoices.html, in this order.

The filter fields likewise: the form (finance.search.InvoiceSearchForm) still reads and validates the URL,
but its seven controls drawn through Django's widget templates took a tenth of the page's time.
"""

from html import escape

from django import forms
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


def filter_fields_html(form: forms.Form) -> SafeString:
    """The form's filter fields (its FILTER_FIELDS, in order), each a `.field` with its label, its control
    showing the submitted value as typed, and its error.

    The controls are those Django's widgets draw (a select for a choice, a text input with the field's
    max length), except that dates and amounts are native date and number inputs. An invalid field is
    marked `aria-invalid` and described by its error, as Django marks the widgets it draws.
    """
    html = []
    for name in form.FILTER_FIELDS:
        bound = form[name]
        field, control_id, value = bound.field, bound.id_for_label, bound.value()
        shown = "" if value is None else escape(str(value))
        error = " ".join(bound.errors)
        described = f' aria-invalid="true" aria-describedby="{control_id}_error"' if error else ""
        attrs = f'name="{bound.html_name}" id="{control_id}"{described}'
        if isinstance(field, forms.ChoiceField):
            chosen = "" if value is None else str(value)
            options = "".join(f'<option value="{escape(str(choice))}"{" selected" if str(choice) == chosen else ""}>'
                              f"{escape(str(label))}</option>" for choice, label in field.choices)
            control = f"<select {attrs}>{options}</select>"
        elif isinstance(field, forms.DateField):
            control = f'<input type="date" {attrs} value="{shown}">'
        elif isinstance(field, forms.DecimalField):
            control = f'<input type="number" step="0.01" {attrs} value="{shown}">'
        else:
            length = f' maxlength="{field.max_length}"' if getattr(field, "max_length", None) else ""
            control = f'<input type="text" {attrs}{f' value="{shown}"' if shown else ""}{length}>'
        html.append(f'<div class="field"><label for="{control_id}">{escape(str(bound.label))}</label>{control}'
                    + (f'<span class="field-error" id="{control_id}_error">{escape(error)}</span>' if error else "")
                    + "</div>")
    return mark_safe("\n".join(html))
