"""A page of a tab's rows and their count in one query, where Django's Paginator runs two.

The Licenses and Invoices tabs show 25 rows a page and "Page 7 of 40 (1,000 licenses)". Paginator asks
the database for the count and then for the page: two round trips, each costing more than the database
took to answer (an account's rows are counted from an index). Here the page's query carries the count
as an uncorrelated subquery, which the database runs once for the whole page; an empty first page means
no rows at all. Only a page beyond the last (a stale link, a typed number) costs the count and then the
page Paginator would have shown instead, so every page number reads exactly as Paginator reads it.
"""

from collections.abc import Callable

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

TOTAL = "page_total"  # the count's column on every row of a counted page
# Beyond this a page number cannot exist (a billion pages of rows), and its OFFSET would overflow
# the database's integer: Paginator's own reading (the last page) is asked for instead.
MAX_PAGE_NUMBER = 10**9


def with_total(rows: QuerySet) -> QuerySet:
    """`rows` with, on each row, the count of all of them (TOTAL): the count's subquery is the rows' own
    filter, so it counts exactly what the pages page through."""
    count_sql, count_params = rows.order_by().values("pk").query.sql_with_params()
    return rows.annotate(**{TOTAL: RawSQL(f"SELECT COUNT(*) FROM ({count_sql}) AS counted", count_params)})


def counted_page(number, per_page: int, *, rows_from: Callable[[int], list], count: Callable[[], int]) -> Page:
    """`Paginator(..., per_page).get_page(number)` from `rows_from(start)` (a page of rows from that
    offset, each carrying TOTAL) and, only when that page is empty, `count()`.

    The page's object_list is the rows; its paginator counts what TOTAL (or `count`) said.
    """
    requested = _page_number(number)
    if requested is not None:
        rows = rows_from((requested - 1) * per_page)
        if rows or requested == 1:  # no first page: there are no rows at all, nothing more to ask
            page = Paginator(range(getattr(rows[0], TOTAL) if rows else 0), per_page).get_page(requested)
            page.object_list = rows
            return page
    page = Paginator(range(count()), per_page).get_page(number)
    page.object_list = rows_from(page.start_index() - 1) if page.paginator.count else []
    return page


def _page_number(number) -> int | None:
    """The page `number` names as Paginator reads it (not a whole number: page 1), or None when it can
    name no page but the last (below 1, or beyond any account's pages)."""
    try:
        if isinstance(number, float) and not number.is_integer():
            raise ValueError
        requested = int(number)
    except (TypeError, ValueError):
        return 1
    return requested if 1 <= requested <= MAX_PAGE_NUMBER else None
