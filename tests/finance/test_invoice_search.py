"""The invoice search across accounts: every filter, whitelisted sorting, 50 a page, totals of the filtered set
(one aggregate), HTMX swapping the table, and a query count that does not grow with the page."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from finance import search
from invoices.models import Invoice
from tests.finance.helpers import clocked_account_make, invoice_make
from tests.helpers import HTMX, text

URL = "/finance/invoices/"


@pytest.fixture
def book(alice, charlie):
    """Alice: a purchase, a renewal (open), a top-up, a credit note on the purchase; charlie: a plan change.
    A test account's invoice never shows."""
    alice.account.billing_email = "accounts@alice.example"
    alice.account.save()
    purchase = invoice_make(alice.account, "297.00", kind=Invoice.PURCHASE, issued_on=datetime.date(2026, 1, 5))
    renewal = invoice_make(alice.account, "99.00", kind=Invoice.RENEWAL, issued_on=datetime.date(2026, 2, 5),
                           status=Invoice.OPEN)
    top_up = invoice_make(alice.account, "45.00", kind=Invoice.TOP_UP, issued_on=datetime.date(2026, 2, 10))
    credit = invoice_make(alice.account, "-14.90", kind=Invoice.CREDIT_NOTE, issued_on=datetime.date(2026, 3, 1),
                          refers_to=purchase)
    change = invoice_make(charlie.account, "50.00", kind=Invoice.CHANGE, issued_on=datetime.date(2026, 3, 15))
    hidden = invoice_make(clocked_account_make(), "999.00", issued_on=datetime.date(2026, 2, 1))
    return {"purchase": purchase, "renewal": renewal, "top_up": top_up, "credit": credit, "change": change,
            "hidden": hidden}


def shown(client, **params) -> list[str]:
    """The invoice numbers the search shows, in order."""
    response = client.get(URL, params)
    assert response.status_code == 200
    body = text(response)
    return [chunk.split('"')[0] for chunk in body.split('data-number="')[1:]]


def numbers(book, *names):
    return [book[name].number for name in names]


def test_everything_newest_first_without_test_accounts(finance_client, book):
    assert shown(finance_client) == numbers(book, "change", "credit", "top_up", "renewal", "purchase")


def test_no_template_comment_reaches_the_page(finance_client, book):
    # A multi-line {# #} is not a comment to Django: it was printed above the table.
    body = finance_client.get("/finance/").content.decode()
    assert "{#" not in body and "worked out with the rows" not in body


@pytest.mark.parametrize(("params", "expected"), [
    ({"q": "charlie"}, ["change"]),  # the account's name
    ({"q": "Alice Events"}, ["credit", "top_up", "renewal", "purchase"]),
    ({"q": "accounts@alice"}, ["credit", "top_up", "renewal", "purchase"]),  # the billing email
    ({"q": "charlie@example.com"}, ["change"]),  # a user's email
    ({"issued_from": "2026-02-01", "issued_to": "2026-02-28"}, ["top_up", "renewal"]),
    ({"status": "open"}, ["renewal"]),
    ({"status": "credited"}, ["credit"]),
    ({"kind": "renewal"}, ["renewal"]),
    ({"kind": "credit_note"}, ["credit"]),
    ({"kind": "change"}, ["change"]),
    ({"kind": "top_up"}, ["top_up"]),
    ({"kind": "purchase"}, ["purchase"]),
    ({"amount_min": "45", "amount_max": "100"}, ["change", "top_up", "renewal"]),
    ({"amount_max": "0"}, ["credit"]),
    ({"q": "nobody"}, []),
])
def test_each_filter(finance_client, book, params, expected):
    assert shown(finance_client, **params) == numbers(book, *expected)


def test_like_wildcards_in_the_search_are_plain_characters(finance_client, book):
    charlie = book["change"].account
    charlie.name = "100% Fun_Co"  # only the account is renamed: its invoice's buyer name is as issued
    charlie.save()
    for q in ("100%", "%", "_", "n_C", "% f"):
        assert shown(finance_client, q=q) == numbers(book, "change"), q
    assert shown(finance_client, q="1%0") == []


def test_many_matching_accounts_are_joined_in_the_query_instead_of_listed(finance_client, book, monkeypatch):
    monkeypatch.setattr(search, "MATCHED_ACCOUNTS_LISTED", 1)
    assert shown(finance_client, q="@") == numbers(book, "change", "credit", "top_up", "renewal", "purchase")
    monkeypatch.setattr(search, "MATCHED_ACCOUNTS_LISTED", 0)
    assert shown(finance_client, q="charlie") == numbers(book, "change")


def test_a_row_shows_an_account_name_as_text_never_as_markup(finance_client, book):
    charlie = book["change"].account
    charlie.name = '<img src=x onerror="alert(1)"> & Co'
    charlie.save()
    body = text(finance_client.get(URL, {"q": "& Co"}))
    assert "<img" not in body
    assert '<td data-label="Account">&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; Co</td>' in body


def test_a_search_by_number(finance_client, book):
    assert shown(finance_client, q=book["top_up"].number) == numbers(book, "top_up")
    assert shown(finance_client, q=book["hidden"].number) == []  # a test account's, never shown


def test_a_number_is_found_by_its_start_in_any_case_its_middle_or_in_an_account_name(finance_client, book):
    start = book["top_up"].number[:-1]  # PB-2026-00000: every real invoice of the book
    assert shown(finance_client, q=start.lower()) == numbers(book, "change", "credit", "top_up", "renewal",
                                                             "purchase")
    assert shown(finance_client, q=book["top_up"].number.removeprefix("PB-")) == numbers(book, "top_up")
    charlie = book["change"].account
    charlie.name = f"Reissue of {book['purchase'].number}"
    charlie.save()
    assert shown(finance_client, q=book["purchase"].number) == numbers(book, "change", "purchase")


@pytest.mark.parametrize(("sort", "expected"), [
    ("total", ["credit", "top_up", "change", "renewal", "purchase"]),
    ("-total", ["purchase", "renewal", "change", "top_up", "credit"]),
    ("issued", ["purchase", "renewal", "top_up", "credit", "change"]),
    ("number", ["purchase", "renewal", "top_up", "credit", "change"]),
    ("account", ["purchase", "renewal", "top_up", "credit", "change"]),
    ("drop table", ["change", "credit", "top_up", "renewal", "purchase"]),  # not whitelisted: the default
    ("account__accountuser__password", ["change", "credit", "top_up", "renewal", "purchase"]),
])
def test_sorting_takes_whitelisted_columns_only(finance_client, book, sort, expected):
    assert shown(finance_client, sort=sort) == numbers(book, *expected)


def test_the_totals_are_those_of_the_filtered_set(finance_client, book):
    body = text(finance_client.get(URL, {"q": "Alice"}))
    # 297.00 + 99.00 + 45.00 charged; −14.90 credited; the test account's 999.00 left out.
    assert 'data-count="4" data-charged="441.00" data-credited="-14.90"' in body
    body = text(finance_client.get(URL))
    assert 'data-count="5" data-charged="491.00" data-credited="-14.90"' in body


def test_invalid_filters_are_shown_and_ignored(finance_client, book):
    response = finance_client.get(URL, {"issued_from": "not a date", "kind": "lottery"})
    assert response.status_code == 200
    body = text(response)
    # Each bad field shows what was typed, is marked invalid and is described by its own error.
    assert ('<input type="date" name="issued_from" id="id_issued_from" aria-invalid="true" '
            'aria-describedby="id_issued_from_error" value="not a date">') in body
    assert '<span class="field-error" id="id_issued_from_error">Enter a valid date.</span>' in body
    assert '<select name="kind" id="id_kind" aria-invalid="true" aria-describedby="id_kind_error">' in body
    assert 'id="id_kind_error">Select a valid choice. lottery is not one of the available choices.' in body
    assert 'aria-invalid' not in body.split('id="id_issued_to"')[1].split(">")[0]
    assert shown(finance_client, issued_from="yesterday") == numbers(book, "change", "credit", "top_up", "renewal",
                                                                     "purchase")


def test_the_filters_live_in_the_url_and_htmx_swaps_only_the_results(finance_client, book):
    full = text(finance_client.get(URL, {"kind": "renewal"}))
    assert "<html" in full and 'id="finance-search"' in full
    assert 'value="renewal" selected' in full  # the form shows the URL's filter
    partial = finance_client.get(URL, {"kind": "renewal"}, headers=HTMX)
    body = text(partial)
    assert "<html" not in body and 'id="finance-results"' in body and 'id="finance-search"' not in body
    assert "HX-Request" in partial["Vary"]
    assert book["renewal"].number in body and book["purchase"].number not in body
    # Column headings and pages keep the filter in their links (and work without JavaScript).
    assert 'href="?kind=renewal&amp;sort=total"' in full


def test_fifty_a_page(finance_client, alice):
    for day in range(1, 56):
        invoice_make(alice.account, "1.00", issued_on=datetime.date(2026, 1, 1) + datetime.timedelta(days=day))
    first = text(finance_client.get(URL))
    assert first.count('data-number="') == 50
    assert "Page 1 of 2" in first and 'rel="next"' in first
    second = text(finance_client.get(URL, {"page": 2}))
    assert second.count('data-number="') == 5
    assert 'data-count="55"' in second  # the totals are the whole set's, on every page
    assert text(finance_client.get(URL, {"page": "999"})).count('data-number="') == 5  # the last page


@pytest.mark.parametrize("sort", ["-issued", "total", "-account"])
def test_a_deep_page_read_by_id_is_the_same_page(finance_client, alice, charlie, monkeypatch, sort):
    for day in range(30):  # ties on the date, the amount and the account: the order still ends on the pk
        invoice_make(charlie.account if day % 3 else alice.account, f"{day % 4 + 1}.00",
                     issued_on=datetime.date(2026, 1, 1) + datetime.timedelta(days=day // 2))
    monkeypatch.setattr(search, "PAGE_SIZE", 7)
    direct = [shown(finance_client, sort=sort, page=page) for page in range(1, 6)]
    monkeypatch.setattr(search, "DEFERRED_JOIN_AFTER", 7)  # from page 2 on
    with CaptureQueriesContext(connection) as queries:
        by_id = [shown(finance_client, sort=sort, page=page) for page in range(1, 6)]
    assert by_id == direct and sum(direct, []) == numbers_sorted(sort)[:30]
    assert len(queries) == 5 * _queries(finance_client, {"sort": sort})  # one query for the page, as before


def numbers_sorted(sort: str) -> list[str]:
    fields = [f"{'-' if sort.startswith('-') else ''}{name}" for name in search.SORTS[sort.lstrip("-")] + ("pk",)]
    return list(Invoice.objects.filter(series="").order_by(*fields).values_list("number", flat=True))


def _queries(client, params) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(URL, params).status_code == 200
    return len(queries)


def test_the_query_count_does_not_grow_with_the_page(finance_client, alice, charlie):
    invoice_make(alice.account, "5.00")
    few = _queries(finance_client, {}), _queries(finance_client, {"q": "Company"})
    for index in range(60):
        invoice_make(charlie.account if index % 2 else alice.account, f"{index + 1}.00")
    many = _queries(finance_client, {}), _queries(finance_client, {"q": "Company"})
    assert many == few
    assert many[0] <= 6  # session, user, group check, totals, page, exports


def test_totals_are_exact_decimals(finance_client, alice):
    invoice_make(alice.account, "0.10")
    invoice_make(alice.account, "0.20")
    assert 'data-charged="0.30"' in text(finance_client.get(URL))  # 0.1 + 0.2 as floats would not be


# Each kind of search the finance staff make, in its own number of queries however many invoices there are:
# session, user, the group check, the exports listed, and the search's own two (the accounts a text matches,
# then the matching invoices' ids and totals with the page's rows; without a text, the totals, then the page).
SEARCH_QUERIES = 6


@pytest.fixture
def many(alice, charlie):
    """120 invoices over four months: Alice's and Charlie's in turn."""
    return [invoice_make(charlie.account if index % 2 else alice.account, f"{index + 1}.00",
                         issued_on=datetime.date(2026, 1, 1) + datetime.timedelta(days=index))
            for index in range(120)]


@pytest.mark.parametrize("search", [
    {}, {"page": "2"}, {"q": "Alice"}, {"q": "PB-2026-0000"}, {"q": "alice@example.com"},
    {"issued_from": "2026-02-01", "issued_to": "2026-02-28"},
    {"q": "Alice", "issued_from": "2026-02-01", "issued_to": "2026-03-31", "page": "2"},
    {"q": "Alice", "page": "99"}, {"q": "nobody"},
])
def test_a_search_takes_the_same_few_queries_whatever_the_number_of_invoices(finance_client, alice, many, search,
                                                                            django_assert_max_num_queries):
    with django_assert_max_num_queries(SEARCH_QUERIES):
        assert finance_client.get(URL, search).status_code == 200


def test_a_text_search_pages_sorts_and_totals_its_matches_like_any_other(finance_client, many):
    alices = [invoice for invoice in many if invoice.account.name == "Alice Events"]
    by_total = sorted(alices, key=lambda invoice: (-invoice.total, -invoice.issued_on.toordinal()))
    first = text(finance_client.get(URL, {"q": "Alice", "sort": "-total"}))
    assert [chunk.split('"')[0] for chunk in first.split('data-number="')[1:]] == [i.number for i in by_total[:50]]
    assert 'data-count="60" data-charged="3600.00" data-credited="0.00"' in first  # 1 + 3 + … + 119
    second = shown(finance_client, q="Alice", sort="-total", page="2")
    assert second == [invoice.number for invoice in by_total[50:]]
    assert shown(finance_client, q="Alice", sort="-total", page="99") == second  # past the end: the last page
    assert shown(finance_client, q="Alice", sort="-total", page="0") == second  # below 1: the last, as Django pages
    assert shown(finance_client, q="Alice", sort="-total", page="-3") == second
    assert shown(finance_client, q="Alice", sort="-total", page="first") == [i.number for i in by_total[:50]]


# Every shape of search: no filter, each filter alone, a text matching no account, one, or too many to list,
# a number's prefix, and everything at once; under each sort. (The shape, not the values, picks the SQL.)
SHAPES = [
    {}, {"q": "Alice"}, {"q": "nobody"}, {"q": "PB-2026-0000"}, {"q": "example"},
    {"issued_from": "2026-02-01"}, {"issued_to": "2026-02-28"}, {"status": "open"}, {"kind": "renewal"},
    {"amount_min": "10"}, {"amount_max": "99.5"},
    {"q": "Alice", "issued_from": "2026-02-01", "issued_to": "2026-03-31", "status": "paid", "kind": "purchase",
     "amount_min": "1", "amount_max": "200"},
]


@pytest.mark.parametrize("sort", ["-issued", "account", "total"])  # the sort is written in as the ORM writes it
@pytest.mark.parametrize("params", SHAPES)
def test_the_sql_built_once_per_shape_is_the_orms_for_these_values(alice, charlie, monkeypatch, params, sort):
    """The search page's queries come from templates (pictor_billing.compiled): each must be the very SQL and
    parameters the ORM builds for the values typed, and every shape must have one (a shape without falls back
    to the ORM on every request, which is right but slow)."""
    monkeypatch.setattr(search, "MATCHED_ACCOUNTS_LISTED", 1)  # "example" matches both: joined, not listed
    values = search.search_values(search.InvoiceSearchForm({**params, "sort": sort}))
    for query, build in search._QUERIES.items():
        template = search.search_template(connection.vendor, query, search._shape(values), sort,
                                          search.PAGE_SIZE, search.TEXT_MATCHES_LISTED)
        assert template is not None, query
        sql, parameters = build(search.filtered(values, sort)).query.sql_with_params()
        assert (template.sql, template.params(values)) == (sql, list(parameters)), query


def test_a_template_is_kept_only_if_it_reproduces_the_orm():
    """A value the samples do not trace (here the page size, written into the SQL) makes the second sample's
    SQL differ from the first's: no template, so the search compiles through the ORM every time."""
    from pictor_billing.compiled import compile_template

    def build(values):
        return Invoice.objects.filter(kind=values["kind"])[:values["limit"]]

    assert compile_template(build, {"kind": "a", "limit": 3}, {"kind": "b", "limit": 4}) is None
    template = compile_template(build, {"kind": "a", "limit": 3}, {"kind": "b", "limit": 3})
    assert template is not None and template.params({"kind": "renewal"}) == ["renewal"]


def test_a_shape_without_a_template_is_searched_through_the_orm(finance_client, book, monkeypatch):
    expected = {key: shown(finance_client, **params) for key, params in
                {"text": {"q": "Alice"}, "dates": {"issued_from": "2026-02-01"}, "all": {}}.items()}
    monkeypatch.setattr(search, "search_template", lambda *key: None)
    assert {key: shown(finance_client, **params) for key, params in
            {"text": {"q": "Alice"}, "dates": {"issued_from": "2026-02-01"}, "all": {}}.items()} == expected
    assert expected["text"] == numbers(book, "credit", "top_up", "renewal", "purchase")


def test_a_text_matching_three_accounts_finds_all_three(finance_client, alice):
    """Three matched accounts are looked up as four places (the last repeated), sharing SQL with four."""
    from tests.factories import AccountFactory

    trio = [AccountFactory(name=f"Trio Booths {index}") for index in range(3)]
    made = [invoice_make(account, f"{index + 1}.00", issued_on=datetime.date(2026, 1, 1 + index))
            for index, account in enumerate(trio)]
    invoice_make(alice.account, "9.00")
    ids = search.search_values(search.InvoiceSearchForm({"q": "trio"}))["account_ids"]
    assert sorted(ids[:3]) == [account.pk for account in trio] and ids[3] == ids[2]
    body = text(finance_client.get(URL, {"q": "trio"}))
    assert [chunk.split('"')[0] for chunk in body.split('data-number="')[1:]] == [i.number for i in reversed(made)]
    assert 'data-count="3" data-charged="6.00"' in body
