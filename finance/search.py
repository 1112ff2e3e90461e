"""The invoice search across accounts: its filter form, the filtered and sorted queryset, its totals.

Filters live in the URL (a GET form). Sorting takes only the columns in SORTS. Test accounts are
left out of the finance area (SPEC, Finance staff). The search page's own queries are built by the ORM
once per shape of search (which filters, how many accounts a text matched, the sort) and run with each
search's values (pictor_billing.compiled); exports build theirs through the ORM (`invoices_filtered`).
"""

import datetime
import functools
from decimal import Decimal

from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Q, Window
from django.db.models.functions import RowNumber

from accounts.models import Account, User
from finance.table import ROW_FIELDS
from invoices.models import NUMBER_PREFIX, Invoice
from pictor_billing.compiled import OFFSET_SAMPLE, Template, compile_template, template_sql
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


def search_values(form: InvoiceSearchForm) -> dict:
    """The form's valid filters as the queries take them (invalid fields are ignored). A text also brings
    `q_number` when it starts like every number (see _number_match) and `account_ids`, the accounts it
    matches (one query), unless more than MATCHED_ACCOUNTS_LISTED do: those are joined in the SQL."""
    form.is_valid()
    data = getattr(form, "cleaned_data", {}) or {}
    values = {name: data[name] for name in ("issued_from", "issued_to", "status", "kind") if data.get(name)}
    values.update({name: data[name] for name in ("amount_min", "amount_max") if data.get(name) is not None})
    q = (data.get("q") or "").strip()
    if q:
        values["q"] = q
        if q.upper().startswith(NUMBER_PREFIX):
            values["q_number"] = q.upper()  # numbers are upper case
        account_ids = _matching_account_ids(q)
        if account_ids is not None:
            values["account_ids"] = _padded(account_ids)
    return values


def _padded(ids: list[int]) -> list[int]:
    """The ids, the last repeated up to a power of two (the same set): a search matching 37 accounts then
    shares its SQL (pictor_billing.compiled) with one matching 60, rather than every count having SQL of its own."""
    size = 1 << (len(ids) - 1).bit_length() if ids else 0
    return ids + ids[-1:] * (size - len(ids))


def _matching_account_ids(q: str) -> list[int] | None:
    """The accounts whose name or billing email contains q, or whose users' email does; None when more
    than MATCHED_ACCOUNTS_LISTED do.

    They are found first, in one query of their own: then the database can read the invoices through
    its indexes (finance/migrations/0002) instead of joining every invoice to its account and users.
    When many accounts match, the set is large anyway and the search joins them in its own query.
    """
    sql, patterns = _accounts_matching_sql(connection.vendor, MATCHED_ACCOUNTS_LISTED + 1)
    with connection.cursor() as cursor:
        cursor.execute(sql, [f"%{connection.ops.prep_for_like_query(q)}%"] * patterns)
        account_ids = [pk for (pk,) in cursor.fetchall()]
    return account_ids if len(account_ids) <= MATCHED_ACCOUNTS_LISTED else None


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


def _number_match(values: dict) -> Q:
    """Numbers containing q. A q that starts like every number ("PB-2025-04") can only be found at a number's
    start, so it is looked up as a prefix, on the number's own index: the trigram index finds its first
    trigrams ("PB-", "-20") in every number (2.4 ms -> 0.8 ms at 100,000 invoices on PostgreSQL)."""
    if "q_number" in values:
        return Q(number__startswith=values["q_number"])
    return Q(number__icontains=values["q"])


def filtered(values: dict, sort_key: str):
    """The invoices these search values (search_values) select, sorted by `sort_key` (one of SORT_CHOICES)."""
    invoices = finance_invoices()
    if "q" in values:
        q = values["q"]
        if "account_ids" in values:
            accounts = Q(account_id__in=values["account_ids"])
        else:
            by_account, by_owner = _accounts_matching(q)
            accounts = Q(account_id__in=Account.objects.filter(Q(pk__in=by_account) | Q(pk__in=by_owner)).values("pk"))
        invoices = invoices.filter(_number_match(values) | Q(buyer_name__icontains=q) | accounts)
    lookups = {"issued_from": "issued_on__gte", "issued_to": "issued_on__lte", "status": "status", "kind": "kind",
               "amount_min": "total__gte", "amount_max": "total__lte"}
    for name, lookup in lookups.items():
        if name in values:
            invoices = invoices.filter(**{lookup: values[name]})
    fields = SORTS[sort_key.lstrip("-")]
    prefix = "-" if sort_key.startswith("-") else ""
    return invoices.order_by(*(f"{prefix}{field}" for field in fields), f"{prefix}pk")


def invoices_filtered(form: InvoiceSearchForm):
    """The invoices the form's valid filters select, sorted by its whitelisted sort (invalid fields are ignored)."""
    return filtered(search_values(form), form.sort_key)


# --- the search page's queries, each compiled once per shape (pictor_billing.compiled) -----------------------------

# Two sets of sample values for every filter, all different from each other and from the queries' constants.
_SAMPLES = (
    {"q": "qsample-a", "q_number": "PB-QSAMPLE-A", "issued_from": datetime.date(1901, 2, 3),
     "issued_to": datetime.date(1902, 3, 4), "status": "status-a", "kind": "kind-a",
     "amount_min": Decimal("-91919.19"), "amount_max": Decimal("-92929.29"), "account_ids": -1000},
    {"q": "qsample-b", "q_number": "PB-QSAMPLE-B", "issued_from": datetime.date(1903, 4, 5),
     "issued_to": datetime.date(1904, 5, 6), "status": "status-b", "kind": "kind-b",
     "amount_min": Decimal("-93939.39"), "amount_max": Decimal("-94949.49"), "account_ids": -2000},
)


def _shape(values: dict) -> tuple:
    """What the SQL of these values depends on: which filters there are, and how many accounts a text
    matched; not the values themselves."""
    return tuple(sorted((name, len(value) if name == "account_ids" else None) for name, value in values.items()))


def _samples(shape: tuple, which: int) -> dict:
    """The first or second sample values of a shape (its account ids counting down from the sample's)."""
    base = _SAMPLES[which]
    return {name: [base[name] - index for index in range(count)] if name == "account_ids" else base[name]
            for name, count in shape}


# What each of the search page's queries selects from the filtered invoices.
_QUERIES = {
    "totals": lambda invoices: invoices.order_by().values("total"),
    "found": lambda invoices: invoices.annotate(found_rank=Window(RowNumber(), order_by=list(invoices.query.order_by)))
    .values_list("pk", "total", *_INVOICE_COLUMNS, "account_id", "found_rank")[:TEXT_MATCHES_LISTED + 1],
    "page": lambda invoices: invoices.values_list(*ROW_FIELDS)[OFFSET_SAMPLE:OFFSET_SAMPLE + PAGE_SIZE],
    # Deep in the set, the page's ids come off the index first and only they are read and joined to their
    # accounts; read directly, every skipped invoice was too (the last of 4,000: 11.5 -> 2.0 ms).
    "deep page": lambda invoices: Invoice.objects.filter(
        pk__in=invoices.values_list("pk")[OFFSET_SAMPLE:OFFSET_SAMPLE + PAGE_SIZE])
    .order_by(*invoices.query.order_by).values_list(*ROW_FIELDS),
}


@functools.lru_cache(maxsize=1024)
def search_template(vendor: str, query: str, shape: tuple, sort_key: str, *sizes: int) -> Template | None:
    """The template of one of the search page's _QUERIES for a shape of search values and a sort (`sizes`:
    the page's and the text matches' limits the SQL was written with, in the key)."""
    return compile_template(lambda values: _QUERIES[query](filtered(values, sort_key)),
                            _samples(shape, 0), _samples(shape, 1))


def search_sql(query: str, values: dict, sort_key: str, start: int = 0) -> tuple[str, list]:
    """The SQL and parameters of one of _QUERIES for these values and sort (a page's starting at `start`)."""
    template = search_template(connection.vendor, query, _shape(values), sort_key, PAGE_SIZE, TEXT_MATCHES_LISTED)
    return template_sql(template, lambda values: _QUERIES[query](filtered(values, sort_key)), values, start)


def invoice_page(form: InvoiceSearchForm, number) -> tuple[Page, dict]:
    """The page `number` asks for (the last one past the end, the first for anything that is not a
    number) of the filtered, sorted invoices, as tuples of finance.table.ROW_FIELDS, and the filtered
    set's totals, in at most two queries beyond a text's accounts whatever the data's size.

    Without a text filter: the totals' aggregate, then the page (an unfiltered search's newest
    invoices come straight off the issue-date index). With one, the matching invoices' ids and totals,
    sorted, with the page's rows beside them (_found_with_page): asked for the page directly, the
    database, misjudging how few invoices match, walks the issue-date index from the newest invoice
    until it has found a page, through every invoice. A text matching more than TEXT_MATCHES_LISTED
    invoices takes the first way (so many are found quickly on that walk). A page deep in a large set
    is read by id (the page's ids, then their rows), in the same single query.
    """
    values, sort_key = search_values(form), form.sort_key
    if "q" in values:
        found = _found_with_page(values, sort_key, number)
        if found is not None:
            return found
    totals = _totals(*search_sql("totals", values, sort_key))
    paginator = Paginator(range(totals["count"]), PAGE_SIZE)
    page = paginator.get_page(number)
    start = page.start_index() - 1
    query = "deep page" if start >= DEFERRED_JOIN_AFTER else "page"
    page.object_list = _rows(*search_sql(query, values, sort_key, start)) if page.object_list else []
    return page, totals


def _rows(sql: str, params: list) -> list[tuple]:
    """The page's rows (tuples of ROW_FIELDS), from its SQL."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [_row(*row) for row in cursor.fetchall()]


_issued_on = Invoice._meta.get_field("issued_on").to_python


def _row(number, issued, kind, status, total, name) -> tuple:
    """A row of ROW_FIELDS as the cursor gave it, with the values the ORM would have converted converted
    (SQLite's cursor gives the date as text and the total as a number)."""
    return number, _issued_on(issued), kind, status, db_money(total), name


def _page_start(number) -> int:
    """Where the page asked for starts, counting from 0, as Paginator.get_page reads `number`: anything but a
    whole number is the first page; one below 1 is the last page, as one past the end is (the query moves
    a start past the end to the last page's)."""
    try:
        asked = int(number)
    except (TypeError, ValueError):
        return 0
    return (asked - 1) * PAGE_SIZE if asked >= 1 else TEXT_MATCHES_LISTED + 1


def _found_with_page(values: dict, sort_key: str, number) -> tuple[Page, dict] | None:
    """A text search's page and totals from one query, or None when more than TEXT_MATCHES_LISTED match.

    The query lists every match's id and total, in order, and beside the matches on the page asked for
    (the last page when it is past the end) their rows: the account's name is read for those rows only.
    Listing the ids, then reading the page's rows by id, took a round trip more (0.5-0.9 ms of a search's
    6-8 ms on PostgreSQL).
    """
    inner, params = search_sql("found", values, sort_key)
    start = _page_start(number)
    with connection.cursor() as cursor:
        cursor.execute(_found_sql(inner, PAGE_SIZE), [*params, start, start])
        found = cursor.fetchall()
    if len(found) > TEXT_MATCHES_LISTED:
        return None
    # The page's rows, and every match's total (its row's NULL off the page: the number never is).
    rows = [_row(number, issued, kind, status, total, name) for _, total, number, issued, kind, status, name in found]
    totals = {"count": len(rows), "charged": sum((row[4] for row in rows if row[4] > 0), ZERO),
              "credited": sum((row[4] for row in rows if row[4] < 0), ZERO)}
    page = Paginator(rows, PAGE_SIZE).get_page(number)  # the same page the query chose
    return page, totals


@functools.lru_cache(maxsize=1024)
def _found_sql(inner: str, page_size: int) -> str:
    """Around the "found" query's SQL (every match, TEXT_MATCHES_LISTED + 1 at most, ranked in the search's
    order): its id, its total and the rest of ROW_FIELDS, NULL but on the page. The two parameters to add
    after the inner query's: the page's start, twice."""
    quote, account = connection.ops.quote_name, Account._meta
    columns = ("pk", "total", *_INVOICE_COLUMNS, "account_id", "found_rank")
    name = (f"(SELECT a.{quote(account.get_field('name').column)} FROM {quote(account.db_table)} a "
            f"WHERE a.{quote(account.pk.column)} = counted.account_id)")
    shown = ", ".join(f"CASE WHEN found_rank > page_start AND found_rank <= page_start + {page_size} THEN {column} END"
                      for column in (*_INVOICE_COLUMNS, name))
    # A start past the end moves to the last page's (integer division in both databases).
    return (f"WITH ranked ({', '.join(columns)}) AS ({inner}), "
            "counted AS (SELECT ranked.*, CASE WHEN %s < COUNT(*) OVER () THEN %s "
            f"ELSE ((COUNT(*) OVER () - 1) / {page_size}) * {page_size} END AS page_start FROM ranked) "
            f"SELECT pk, total, {shown} FROM counted ORDER BY found_rank")


def invoice_totals(invoices) -> dict:
    """Count, charged (sum of positive totals) and credited (sum of negative totals) of these invoices,
    in one aggregate query."""
    return _totals(*_QUERIES["totals"](invoices).query.sql_with_params())


def _totals(inner: str, params) -> dict:
    """The totals of the invoices the SQL `inner` selects (their totals): the query summed around. Through
    `aggregate()` the ORM took longer to build the query (0.7 ms) than PostgreSQL took to sum a month's
    4,000 invoices (0.5 ms)."""
    with connection.cursor() as cursor:
        # The charged sum is the whole sum less the credits: one filtered sum fewer (0.84 -> 0.70 ms).
        cursor.execute(f"SELECT COUNT(*), SUM(total), SUM(total) FILTER (WHERE total < 0) FROM ({inner}) AS found",
                       params)
        count, summed, credited = cursor.fetchone()
    credited = ZERO if credited is None else db_money(credited)
    return {"count": count, "charged": (ZERO if summed is None else db_money(summed)) - credited, "credited": credited}
