"""The Licenses tab: the list, cancel and undo, the feature list (buying is billing.views.purchase)."""

import functools

from django.contrib import messages
from django.db import connection
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import account_required
from licenses.models import Feature, License
from licenses.services import (
    ChangeRefused,
    LicenseActionRefused,
    license_cancel,
    license_change_undo,
    license_undo_cancel,
    tier_cards,
)
from licenses.table import license_row_html
from pictor_billing import clock, pricing
from pictor_billing.compiled import OFFSET_SAMPLE, Template, compile_template, template_sql
from pictor_billing.htmx import render_htmx
from pictor_billing.links import pk_link
from pictor_billing.paging import counted_page, with_total

# A row's words, escaped once here rather than by the template in every row (SafeStrings).
TIER_SHOWN = {tier: escape(label) for tier, label in pricing.TIER_LABELS.items()}
PERIOD_SHOWN = {period: escape(label) for period, label in pricing.PERIOD_LABELS.items()}
STATUS_SHOWN = {label: (escape(label), escape(label.lower().replace(" ", "-")))  # "Past due" -> "past-due"
                for label in [*dict(License.STATUS_CHOICES).values(), License.CANCELLING_LABEL]}

PAGE_SIZE = 25
ROW_FIELDS = ("tier", "period", "status", "cancel_at_period_end", "purchased_on", "period_end", "next_tier",
              "next_period")


@require_GET
@account_required
def license_list(request):
    """The account's licenses, newest first, 25 a page."""
    return render_htmx(request, "licenses/list.html", _list_context(request), partial="table")


def _list_context(request) -> dict:
    """One page of the account's licenses (`?page=`; a page out of range shows the last), as the tab shows them.

    A fixed set of queries whatever the account's size: one page of rows with their count beside them
    (pictor_billing.paging; a page that does not exist costs the count and the last page's rows), each
    built by the ORM once per process (pictor_billing.compiled): built on every page, they cost more
    Python (0.45 ms) than the database took to answer them.
    """
    values = {"account": request.account.pk}

    def count() -> int:
        count_sql, params = _tab_sql("count", values)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM ({count_sql}) AS licenses", params)
            return cursor.fetchone()[0]

    page = counted_page(request.GET.get("page"), PAGE_SIZE, count=count, rows_from=lambda start: list(
        License.objects.raw(*_tab_sql("page", values, start=start))))
    return {"licenses": _shown(request, page.object_list), "page": page, "tab": "licenses"}


# The tab's two queries, of an account's licenses: their ids (counted), and a page of the columns a row
# shows (a license has twice as many), in the model's order (newest first), each with the count.
_TAB_QUERIES = {
    "count": lambda values: License.objects.filter(account_id=values["account"]).order_by().values("pk"),
    "page": lambda values: with_total(License.objects.filter(account_id=values["account"]).only(*ROW_FIELDS))[
        OFFSET_SAMPLE:OFFSET_SAMPLE + PAGE_SIZE],
}


@functools.lru_cache(maxsize=8)
def _tab_template(vendor: str, query: str, page_size: int) -> Template | None:
    return compile_template(_TAB_QUERIES[query], {"account": -1001}, {"account": -2002})


def _tab_sql(query: str, values: dict, start: int = 0) -> tuple[str, list]:
    """One of _TAB_QUERIES' SQL and parameters for these values (the page's starting at `start`)."""
    return template_sql(_tab_template(connection.vendor, query, PAGE_SIZE), _TAB_QUERIES[query], values, start)


def _shown(request, licenses) -> list[License]:
    """The licenses with what the tab shows of each: ended, its status (and the status's CSS class), its
    tier and period in words, its actions' links, and its row (licenses.table). Looked up once here: Django's
    get_FOO_display and slugify were a fifth of the table's rendering, a reverse per row and link a tenth."""
    licenses, csrf = list(licenses), get_token(request)
    cancel, undo_cancel, undo_change = (pk_link(f"licenses:{name}") for name in (
        "cancel_confirm", "undo_cancel", "undo_change"))
    change = escape(f"{reverse('billing:license_change')}?license=")
    for license in licenses:
        license.ended = license.has_ended
        license.status_shown, license.status_class = STATUS_SHOWN[license.status_label]
        license.tier_shown, license.period_shown = TIER_SHOWN[license.tier], PERIOD_SHOWN[license.period]
        license.cancel_url, license.change_url = cancel(license.pk), SafeString(f"{change}{license.pk}")
        license.undo_cancel_url, license.undo_change_url = undo_cancel(license.pk), undo_change(license.pk)
        license.row_html = license_row_html(license, csrf)
    return licenses


def _row_action(request, pk, act, refusal, said):
    """Run one of a license row's actions; a refusal is shown with a 409, success with its message."""
    license = get_object_or_404(License, pk=pk, account=request.account)
    try:
        license = act(account=request.account, license=license)
    except refusal as refused:
        messages.error(request, str(refused))
        return _to_list_or_row(request, license, status=409)
    messages.success(request, said(license))
    return _to_list_or_row(request, license)


@require_GET
@account_required
def license_cancel_confirm(request, pk):
    """Ask before cancelling: when the license ends, and that it can be undone until then (a dialog,
    or a page of its own without JavaScript, so no single click ends a license)."""
    license = get_object_or_404(License, pk=pk, account=request.account)
    return render_htmx(request, "licenses/cancel.html", {"license": license, "tab": "licenses"}, partial="modal")


@require_POST
@account_required
def license_cancel_view(request, pk):
    """Cancel at period end (it stays active until its billing date)."""
    return _row_action(request, pk, license_cancel, LicenseActionRefused, lambda lic: (
        f"License #{lic.pk} is cancelled. It stays active until {pricing.day_words(lic.period_end)}."))


@require_POST
@account_required
def license_undo_cancel_view(request, pk):
    """Undo a cancellation before the billing date."""
    return _row_action(request, pk, license_undo_cancel, LicenseActionRefused,
                       lambda lic: f"License #{lic.pk} will renew as normal.")


@require_POST
@account_required
def license_undo_change_view(request, pk):
    """Undo a scheduled downgrade before the billing date: the license renews as it is."""
    return _row_action(request, pk, license_change_undo, ChangeRefused,
                       lambda lic: f"License #{lic.pk} will renew as {lic.renews_as_label}, as it is now.")


def _to_list_or_row(request, license, status=200):
    if request.htmx and request.htmx.target == f"license-{license.pk}":
        return render_htmx(request, "licenses/list.html", {"license": _shown(request, [license])[0]}, partial="row",
                           status=status)
    if status != 200:  # a refusal: show it on the page, with its 4xx
        return render_htmx(request, "licenses/list.html", _list_context(request), status=status)
    return redirect("licenses:list")


@require_GET
@account_required
def feature_list(request):
    """The full feature list, per tier."""
    return render_htmx(request, "licenses/features.html", {
        "features": Feature.objects.all(), "tiers": tier_cards(clock.today(request.account)), "tab": "licenses"})
