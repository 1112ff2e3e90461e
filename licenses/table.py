"""A Licenses tab row, built in Python as Django admin builds its change list's rows.

A page is 25 rows, and a row is a dozen cells and up to two actions: as template variables and tags,
each resolved, localized and escaped in turn, they were half of the tab's rendering. Here a row is a few
f-strings of values escaped once (the labels at import, in licenses.views; the rest are ids, dates and
links this code makes). The markup is what the template had, cell for cell; the column headings stay in
templates/licenses/list.html, in this order. The tab's page and the HTMX answer to a row's action (its
`row` partial) print the same `license.row_html`.
"""

from html import escape

from django.utils.safestring import SafeString, mark_safe

from pictor_billing.pricing import day_words


def _form(url: str, pk: int, csrf: str, label: str, words: str, focus: bool) -> str:
    """A POST button of a row (undo change, undo cancel), swapping the row for the answer."""
    return (f'<form method="post" action="{url}" hx-post="{url}" hx-target="#license-{pk}" hx-swap="outerHTML">'
            f'<input type="hidden" name="csrfmiddlewaretoken" value="{csrf}">'
            f'<button class="button" type="submit" aria-label="{label}"{" data-focus-after-swap" if focus else ""}>'
            f'{words}</button></form>')


def _actions(license, csrf: str) -> str:
    """A license's action buttons: change plan (or undo a scheduled change), cancel (or undo it)."""
    pk, parts = license.pk, []
    if license.change_scheduled:
        renews_as = escape(license.renews_as_label)
        parts.append(_form(license.undo_change_url, pk, csrf, f"Undo change of license #{pk} to {renews_as}",
                           "Undo change", focus=False))
    elif not license.cancel_at_period_end and license.status == license.ACTIVE:
        parts.append(f'<a class="button" href="{license.change_url}" hx-get="{license.change_url}" '
                     f'hx-target="#modal-root" aria-label="Change plan of license #{pk}">Change plan</a>')
    if license.cancel_at_period_end:
        parts.append(_form(license.undo_cancel_url, pk, csrf, f"Undo cancel of license #{pk}", "Undo cancel",
                           focus=True))
    else:
        # Asks first: a dialog, or without JavaScript a page of its own (licenses.views.license_cancel_confirm).
        parts.append(f'<a class="button" href="{license.cancel_url}" hx-get="{license.cancel_url}" '
                     f'hx-target="#modal-root" aria-label="Cancel license #{pk}" data-focus-after-swap>Cancel</a>')
    return f'<span class="row-actions">{"".join(parts)}</span>'


def license_row_html(license, csrf: str) -> SafeString:
    """One license's `<tr>`, from what licenses.views._shown worked out for it; `csrf` is the page's token."""
    pk, ended, end = license.pk, license.ended, license.period_end
    select = ("" if ended else f'<input type="checkbox" name="license" value="{pk}" form="change-selected" '
              f'aria-label="Select license #{pk}">')
    verb = "Ended" if ended else "Ends" if license.cancel_at_period_end else "Renews"
    scheduled = ("" if ended or not license.change_scheduled else
                 f"<br><small data-scheduled-change>as {escape(license.renews_as_label)}</small>")
    return mark_safe(
        f'<tr id="license-{pk}">'
        f'<td class="select-cell" data-label="Select">{select}</td>'
        f'<td data-label="License">#{pk}</td>'
        f'<td data-label="Tier">{license.tier_shown}</td>'
        f'<td data-label="Period">{license.period_shown}</td>'
        f'<td data-label="Status"><span class="status status-{license.status_class}">{license.status_shown}</span></td>'
        f'<td data-label="Renews or ends on">{verb} <time datetime="{end.isoformat()}">{day_words(end)}</time>'
        f'{scheduled}</td>'
        f'<td data-label="Purchased on"><time datetime="{license.purchased_on.isoformat()}">'
        f'{day_words(license.purchased_on)}</time></td>'
        f'<td>{"" if ended else _actions(license, csrf)}</td>'
        '</tr>')
