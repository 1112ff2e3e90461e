"""The Billing header's one query, planned once per connection on PostgreSQL (issue 12's fast paths).

Every Billing page shows the header, and its query (the token balance, the credit balance, the
default card and the banners' ids: billing.context_processors.header_figures) took PostgreSQL
longer to plan than to run. It goes through a prepared cursor (pictor_billing.compiled.prepared_cursor):
still counted and logged like every other query, and still reading the data as it is now.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from pictor_billing.postgresql.base import PREPARE_THRESHOLD
from tests.conftest import logged_in
from tests.helpers import text
from tokens.services import tokens_adjust

HEADER_MARK = "balance_after FROM tokens_tokenentry"  # the header's query, as in pg_prepared_statements
LOADS = PREPARE_THRESHOLD + 2  # psycopg prepares a statement on its fifth run


def header_queries(client) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/billing/invoices/").status_code == 200
    return [query["sql"] for query in captured.captured_queries if HEADER_MARK in query["sql"]]


def test_the_header_query_is_counted_like_any_other(alice):
    """Query-count tests and the debug log still see it: one query for the whole header."""
    assert len(header_queries(logged_in(alice))) == 1


def test_a_prepared_header_still_shows_the_balance_as_it_is_now(alice):
    client = logged_in(alice)
    for _ in range(LOADS):
        header_queries(client)
    tokens_adjust(account=alice.account, amount=1234, reason="Goodwill", user=None)
    assert 'data-token-balance="1234"' in text(client.get("/billing/invoices/"))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_on_postgresql_the_header_is_planned_once_per_connection(alice):
    client = logged_in(alice)
    for _ in range(LOADS):
        header_queries(client)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [statement for (statement,) in cursor.fetchall()]
    assert [statement for statement in prepared if HEADER_MARK in statement]
    # Only the prepared cursor's statements: the ordinary cursor binds on the client and never prepares.
    assert not [statement for statement in prepared if "django_session" in statement]
