"""The invoice search across accounts: its filter form, the filtered and sorted queryset, its totals.

Filters live in the URL (a GET form). Sorting takes only the columns in SORTS. Test accounts are
left out of the finance area (SPEC, Finance staff).
"""

import functools

from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.core.paginator import Page, Paginator
from django.db import connection, connections
from django.db.models import Q, Window
from django.db.models.functions import RowNumber

from accounts.models import Account, User
from finance.table import ROW_FIELDS
from invoices.models import NUMBER_PREFIX, Invoice
from pictor_billing.money import ZERO, db_money

PAGE_SIZE = 50
# ROW_FIELDS that are the invoice's own columns, before its total and its account's name (_found_sql).
_INVOICE_COLUMNS = ROW_FIELDS[:4]
if ROW_FIELDS != (*_INVOICE_COLUMNS, "total", "account__name"):
    raise ImproperlyConfigured(f"finance.search reads the rows {ROW_FIELDS!r} in another order")
MATCHED_ACCOUNTS_LISTED = 500  # more accounts matching the text than this: joined in SQL, not listed
TEXT_MATCHES_LISTED = 5000  # a text search matching at most this many invoices is paged from their ids
DEFERRED_JOIN_AFTER = 500  # a page starting past this many invoices is read by id (see invoice_page)

# Column -> the order_by fields (ascending); "-column" sorts descending. Ties end on the pk.
SORTS = {
    "number": ("series", "year", "sequence"),
    "issued": ("issued_on", "year", "sequence"),
    "account": ("account__name", "issued_on", "sequence"),
    "kind": ("kind", "issued_on", "sequence"),
    "status": ("status", "issued_on", "sequence"),
    "total": ("total", "issued_on", "sequence"),
}
DEFAULT_SORT = "-issued"
SORT_CHOICES = [(key, key) for name in SORTS for key in (name, f"-{name}")]


class InvoiceSearchForm(forms.Form):
    q = forms.CharField(label="Number, account or email", required=False, max_length=200)
    issued_from = forms.DateField(label="Issued from", required=False)
    issued_to = forms.DateField(label="Issued to", required=False)
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *Invoice.STATUS_CHOICES])
    kind = forms.ChoiceField(label="Kind", required=False, choices=[("", "Any kind"), *Invoice.KIND_CHOICES])
    amount_min = forms.DecimalField(label="Amount from", required=False, max_digits=12, decimal_places=2)
    amount_max = forms.DecimalField(label="Amount to", required=False, max_digits=12, decimal_places=2)
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)

    FILTER_FIELDS = ("q", "issued_from", "issued_to", "status", "kind", "amount_min", "amount_max")

    def filters(self) -> dict:
        """The valid filters as plain strings (what an export records); invalid or empty ones are left out."""
        self.is_valid()  # cleaned_data then holds the valid fields only
        data = self.cleaned_data
        return {name: str(data[name]) for name in self.FILTER_FIELDS if data.get(name) not in (None, "")}

    @property
    def sort_key(self) -> str:
        return (getattr(self, "cleaned_data", {}) or {}).get("sort") or DEFAULT_SORT


def finance_invoices():
    """Every invoice of every real account: the real numbering series. A test account numbers its own
    PB-TEST-…, and an account becomes one only before it has billed anything (billing.clocks), so this
    needs no join to the accounts."""
    return Invoice.objects.filter(series="", number__isnull=False)


def _text_match(q: str) -> Q:
    """Invoices whose number or buyer name contains q, or whose account's name, billing email or users'
    emails do.

    The accounts are found first, in one query of their own: then the database can read the invoices
    through its indexes (finance/migrations/0002) instead of joining every invoice to its account and
    users. When many accounts match, the set is large anyway and it joins them in the same query.
    """
    sql, patterns = _accounts_matching_sql(connection.vendor, MATCHED_ACCOUNTS_LISTED + 1)
    with connection.cursor() as cursor:
        cursor.execute(sql, [f"%{connection.ops.prep_for_like_query(q)}%"] * patterns)
        account_ids = [pk for (pk,) in cursor.fetchall()]
    if len(account_ids) > MATCHED_ACCOUNTS_LISTED:
        accounts, owners = _accounts_matching(q)
        account_ids = Account.objects.filter(Q(pk__in=accounts) | Q(pk__in=owners)).values("pk")
    return _number_match(q) | Q(buyer_name__icontains=q) | Q(account_id__in=account_ids)


def _accounts_matching(q: str):
    """The accounts whose name or billing email contains q, and the accounts of users whose email does."""
    accounts = Account.objects.filter(Q(name__icontains=q) | Q(billing_email__icontains=q)).order_by().values_list("pk")
    owners = User.objects.filter(email__icontains=q, account__isnull=False).order_by().values_list("account_id")
    return accounts, owners


@functools.cache
def _accounts_matching_sql(vendor: str, limit: int) -> tuple[str, int]:
    """The ids of the accounts q matches (`limit` at most), as SQL the ORM
    builds once per process, and how many times it takes q's LIKE pattern. Only q changes from one search
    to the next, and building the union took 0.9 ms of Python on every text search against 0.3 ms of reading."""
    sample = "sample"
    accounts, owners = _accounts_matching(sample)
    sql, params = accounts.union(owners).order_by()[:limit].query.sql_with_params()
    if any(param != f"%{sample}%" for param in params):  # each parameter must be q's pattern, and only that
        raise ImproperlyConfigured(f"the account search's parameters changed shape: {params!r}")
    return sql, len(params)


def _number_match(q: str) -> Q:
    """Numbers containing q. A q that starts like every number ("PB-2025-04") can only be found at a number's
    start, so it is looked up as a prefix, on the number's own index: the trigram index finds its first
    trigrams ("PB-", "-20") in every number (2.4 ms -> 0.8 ms at 100,000 invoices on PostgreSQL)."""
    if q.upper().startswith(NUMBER_PREFIX):
        return Q(number__startswith=q.upper())  # numbers are upper case
    return Q(number__icontains=q)


def invoices_filtered(form: InvoiceSearchForm):
    """The invoices the form's valid filters select, sorted by its whitelisted sort (invalid fields are ignored)."""
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    invoices = finance_invoices()
    q = (data.get("q") or "").strip()
    if q:
        invoices = invoices.filter(_text_match(q))
    if data.get("issued_from"):
        invoices = invoices.filter(issued_on__gte=data["issued_from"])
    if data.get("issued_to"):
        invoices = invoices.filter(issued_on__lte=data["issued_to"])
    if data.get("status"):
        invoices = invoices.filter(status=data["status"])
    if data.get("kind"):
        invoices = invoices.filter(kind=data["kind"])
    if data.get("amount_min") is not None:
        invoices = invoices.filter(total__gte=data["amount_min"])
    if data.get("amount_max") is not None:
        invoices = invoices.filter(total__lte=data["amount_max"])
    key = form.sort_key
    fields = SORTS[key.lstrip("-")]
    prefix = "-" if key.startswith("-") else ""
    return invoices.order_by(*(f"{prefix}{field}" for field in fields), f"{prefix}pk")


def invoice_page(form: InvoiceSearchForm, invoices, number) -> tuple[Page, dict]:
    """The page `number` asks for (the last one past the end, the first for anything that is not a
    number) of the filtered, sorted invoices, as tuples of finance.table.ROW_FIELDS, and the filtered
    set's totals, in at most three queries whatever the data's size.

    Without a text filter: the totals' aggregate, then the page (an unfiltered search's newest
    invoices come straight off the issue-date index). With one, the matching invoices' ids and totals,
    sorted, with the page's rows beside them (_found_with_page): asked for the page directly, the
    database, misjudging how few invoices match, walks the issue-date index from the newest invoice until it has found a
    page, through every invoice. A text matching more than TEXT_MATCHES_LISTED invoices takes the first
    way (so many are found quickly on that walk). A page deep in a large set is read by id (the
    page's ids, then their rows), in the same single query.
    """
    if (getattr(form, "cleaned_data", {}) or {}).get("q", "").strip():
        found = _found_with_page(invoices, number)
        if found is not None:
            return found
    totals = invoice_totals(invoices)
    paginator = Paginator(invoices.values_list(*ROW_FIELDS), PAGE_SIZE)
    paginator.count = totals["count"]  # known from the aggregate: no COUNT query of its own
    page = paginator.get_page(number)
    if page.start_index() > DEFERRED_JOIN_AFTER:
        # Deep in the set, the page's ids come off the index first and only they are read and joined to
        # their accounts; read directly, every skipped invoice was too (the last of 4,000: 11.5 -> 2.0 ms).
        # Nearer the start the direct read is cheaper than building the subquery.
        ids = invoices.values_list("pk")[page.start_index() - 1:page.end_index()]
        page.object_list = list(Invoice.objects.filter(pk__in=ids).order_by(*invoices.query.order_by)
                                .values_list(*ROW_FIELDS))
    return page, totals


def _page_start(number) -> int:
    """Where the page asked for starts, counting from 0, as Paginator.get_page reads `number`: anything but a
    whole number is the first page; one below 1 is the last page, as one past the end is (the query moves
    a start past the end to the last page's)."""
    try:
        asked = int(number)
    except (TypeError, ValueError):
        return 0
    return (asked - 1) * PAGE_SIZE if asked >= 1 else TEXT_MATCHES_LISTED + 1


def _found_with_page(invoices, number) -> tuple[Page, dict] | None:
    """A text search's page and totals from one query, or None when more than TEXT_MATCHES_LISTED match.

    The query lists every match's id and total, in order, and beside the matches on the page asked for
    (the last page when it is past the end) their rows: the account's name is read for those rows only.
    Listing the ids, then reading the page's rows by id, took a round trip more (0.5-0.9 ms of a search's
    6-8 ms on PostgreSQL).
    """
    sql, params = _found_sql(invoices)
    start = _page_start(number)
    with connections[invoices.db].cursor() as cursor:
        cursor.execute(sql, [*params, start, start])
        found = cursor.fetchall()
    if len(found) > TEXT_MATCHES_LISTED:
        return None
    issued_on = Invoice._meta.get_field("issued_on").to_python  # SQLite's cursor gives the text
    # The page's rows, and every match's total (its row's NULL off the page: the number never is).
    rows = [(number, issued_on(issued), kind, status, db_money(total), name)
            for _, total, number, issued, kind, status, name in found]
    totals = {"count": len(rows), "charged": sum((row[4] for row in rows if row[4] > 0), ZERO),
              "credited": sum((row[4] for row in rows if row[4] < 0), ZERO)}
    page = Paginator(rows, PAGE_SIZE).get_page(number)  # the same page the query chose
    return page, totals


def _found_sql(invoices) -> tuple[str, list]:
    """The SQL of every match (TEXT_MATCHES_LISTED + 1 at most), in the search's order: its id, its total and
    the rest of ROW_FIELDS, NULL but on the page. The two parameters to add: the page's start, twice."""
    ranked = invoices.annotate(found_rank=Window(RowNumber(), order_by=list(invoices.query.order_by)))
    columns = ("pk", "total", *_INVOICE_COLUMNS, "account_id", "found_rank")
    inner, params = ranked.values_list(*columns)[:TEXT_MATCHES_LISTED + 1].query.sql_with_params()
    quote, account = connections[invoices.db].ops.quote_name, Account._meta
    name = (f"(SELECT a.{quote(account.get_field('name').column)} FROM {quote(account.db_table)} a "
            f"WHERE a.{quote(account.pk.column)} = counted.account_id)")
    shown = ", ".join(f"CASE WHEN found_rank > page_start AND found_rank <= page_start + {PAGE_SIZE} THEN {column} END"
                      for column in (*_INVOICE_COLUMNS, name))
    # A start past the end moves to the last page's (integer division in both databases).
    return (f"WITH ranked ({', '.join(columns)}) AS ({inner}), "
            "counted AS (SELECT ranked.*, CASE WHEN %s < COUNT(*) OVER () THEN %s "
            f"ELSE ((COUNT(*) OVER () - 1) / {PAGE_SIZE}) * {PAGE_SIZE} END AS page_start FROM ranked) "
            f"SELECT pk, total, {shown} FROM counted ORDER BY found_rank", list(params))


def invoice_totals(invoices) -> dict:
    """Count, charged (sum of positive totals) and credited (sum of negative totals) in one aggregate query.

    The filtered set's query is compiled as it is and summed around: through `aggregate()` the ORM took
    longer to build the query (0.7 ms) than PostgreSQL took to sum a month's 4,000 invoices (0.5 ms).
    """
    inner, params = invoices.order_by().values("total").query.sql_with_params()
    with connections[invoices.db].cursor() as cursor:
        # The charged sum is the whole sum less the credits: one filtered sum fewer (0.84 -> 0.70 ms).
        cursor.execute(f"SELECT COUNT(*), SUM(total), SUM(total) FILTER (WHERE total < 0) FROM ({inner}) AS found",
                       params)
        count, summed, credited = cursor.fetchone()
    credited = ZERO if credited is None else db_money(credited)
    return {"count": count, "charged": (ZERO if summed is None else db_money(summed)) - credited, "credited": credited}
