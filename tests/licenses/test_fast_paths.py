"""Issue 12's fast paths on the Licenses side: the Order Summary's queries, the cached price list,
and the Licenses tab paged whatever the account's size.

The authenticated-page baseline (bench/baseline.py) costs 3 queries: the session, the user (with
its account) and one row. The goals are counted against it.
"""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.renewals import next_renewal, renewal_quote
from licenses.models import License, PriceListEntry, PriceListVersion
from licenses.services import license_cancel, license_change_schedule
from payments.models import CreditEntry
from tests.conftest import logged_in
from tests.factories import CouponFactory
from tests.helpers import buy_directly, clock_at, summary, summary_figure, text

BASELINE_QUERIES = 3
ADJUSTMENT = "volume_adjustment"
SUMMARY = {"tier": "pro", "period": "monthly", "quantity": 3, "coupon": "WELCOME10"}


@pytest.fixture
def welcome10(db):
    return CouponFactory(code="WELCOME10", value=Decimal("10"))


def bulk_licenses(account, count: int) -> None:
    """`count` more active licenses bought the ordinary way (100 a purchase, the form's maximum)."""
    while count:
        buy_directly(account, tier="basic", period="annual", quantity=min(count, 100))
        count -= min(count, 100)


class TestOrderSummaryQueries:
    @pytest.mark.parametrize("active", [1, 500])
    def test_the_summary_costs_at_most_three_queries_beyond_the_authenticated_page(
            self, prices, alice, alice_card, welcome10, django_assert_max_num_queries, active):
        bulk_licenses(alice.account, active)
        client = logged_in(alice)
        assert summary(client, **SUMMARY).status_code == 200  # the worker's price list is cached now
        with django_assert_max_num_queries(BASELINE_QUERIES + 3):
            response = summary(client, **SUMMARY)
        assert response.status_code == 200
        assert summary_figure(response) > 0

    def test_the_summary_runs_the_same_queries_for_1_and_500_active_licenses(self, prices, alice, alice_card,
                                                                            welcome10, django_assert_num_queries):
        client = logged_in(alice)
        bulk_licenses(alice.account, 1)
        summary(client, **SUMMARY)
        with CaptureQueriesContext(connection) as one:
            summary(client, **SUMMARY)
        bulk_licenses(alice.account, 499)
        with django_assert_num_queries(len(one.captured_queries)):
            summary(client, **SUMMARY)

    def test_crossing_into_a_bracket_adjusts_the_licenses_below_it_in_the_same_queries(
            self, prices, alice, alice_card, django_assert_max_num_queries):
        bulk_licenses(alice.account, 8)  # at 5%: 2 more reach 10 and 15%, and the 8 are adjusted
        client = logged_in(alice)
        summary(client, tier="pro", period="monthly", quantity=2)
        with django_assert_max_num_queries(BASELINE_QUERIES + 2):  # no coupon: one query fewer
            response = summary(client, tier="pro", period="monthly", quantity=2)
        assert summary_figure(response, ADJUSTMENT) < 0  # the 8 licenses' credit for the rest of their term


class TestCachedPriceList:
    """The price list is cached per worker under (its version in the database, the account's today)."""

    def test_an_admin_price_change_is_seen_by_the_very_next_summary(self, prices, alice, alice_card):
        client = logged_in(alice)
        assert summary_figure(summary(client, tier="pro", period="annual", quantity=1)) == Decimal("990.00")
        entry = PriceListEntry.objects.get(tier="pro", period="annual")
        entry.unit_price = Decimal("1000.00")
        entry.save()  # as the admin does

        assert summary_figure(summary(client, tier="pro", period="annual", quantity=1)) == Decimal("1000.00")

    def test_a_change_another_worker_made_is_seen_here_at_once(self, prices, alice, alice_card):
        """Another worker's save reaches this one only through the database: the price and a new version."""
        client = logged_in(alice)
        assert summary_figure(summary(client, tier="pro", period="annual", quantity=1)) == Decimal("990.00")
        PriceListEntry.objects.filter(tier="pro", period="annual").update(unit_price=Decimal("1100.00"))
        PriceListVersion.objects.update(token="from-another-worker")

        assert summary_figure(summary(client, tier="pro", period="annual", quantity=1)) == Decimal("1100.00")

    def test_a_price_taking_effect_at_midnight_is_seen_from_midnight(self, prices, alice, alice_card):
        tonight = datetime.datetime(2027, 3, 1, 23, 59, tzinfo=datetime.UTC)
        PriceListEntry.objects.create(tier="pro", period="annual", effective_from=datetime.date(2027, 3, 2),
                                      unit_price=Decimal("1200.00"))
        client = logged_in(alice)
        with clock_at(alice.account, tonight):
            assert summary_figure(summary(client, tier="pro", period="annual", quantity=1)) == Decimal("990.00")
        with clock_at(alice.account, tonight + datetime.timedelta(minutes=1)):
            assert summary_figure(summary(client, tier="pro", period="annual", quantity=1)) == Decimal("1200.00")

    def test_a_deleted_price_is_no_longer_offered(self, prices, alice, alice_card):
        client = logged_in(alice)
        future = PriceListEntry.objects.create(tier="pro", period="annual", effective_from=datetime.date(2020, 6, 1),
                                               unit_price=Decimal("950.00"))
        assert summary_figure(summary(client, tier="pro", period="annual", quantity=1)) == Decimal("950.00")
        future.delete()
        assert summary_figure(summary(client, tier="pro", period="annual", quantity=1)) == Decimal("990.00")


@pytest.mark.usefixtures("prices", "alice_card")
class TestLicensesTab:
    def test_a_thousand_licenses_are_shown_25_a_page_newest_first(self, alice):
        bulk_licenses(alice.account, 1000)
        newest = list(License.objects.filter(account=alice.account).values_list("pk", flat=True)[:26])
        client = logged_in(alice)

        first = text(client.get("/billing/licenses/"))
        second = text(client.get("/billing/licenses/?page=2"))

        assert first.count('<tr id="license-') == 25
        assert f'id="license-{newest[0]}"' in first and f'id="license-{newest[25]}"' in second
        assert 'aria-label="License pages"' in first
        assert "Page 1 of 40 (1000 licenses)" in first
        assert 'href="?page=2" rel="next"' in first

    def test_the_tab_runs_the_same_queries_for_one_or_a_thousand_licenses(self, alice, django_assert_num_queries):
        client = logged_in(alice)
        bulk_licenses(alice.account, 1)
        client.get("/billing/licenses/")
        with CaptureQueriesContext(connection) as one:
            client.get("/billing/licenses/")
        bulk_licenses(alice.account, 999)
        with django_assert_num_queries(len(one.captured_queries)):
            assert client.get("/billing/licenses/?page=7").status_code == 200

    @pytest.mark.parametrize("page", ["0", "999", "abc", "-1", "", "99999999999999999999", "2.5"])
    def test_an_out_of_range_page_shows_a_real_page_not_an_error(self, alice, page):
        bulk_licenses(alice.account, 30)
        response = logged_in(alice).get(f"/billing/licenses/?page={page}")
        assert response.status_code == 200
        assert text(response).count('<tr id="license-') in (25, 5)

    def test_one_page_of_licenses_shows_no_page_controls(self, alice):
        bulk_licenses(alice.account, 3)
        assert 'aria-label="License pages"' not in text(logged_in(alice).get("/billing/licenses/"))

    def test_every_row_links_to_its_own_license_s_actions(self, prices, alice):
        bulk_licenses(alice.account, 3)
        first, cancelling, changing = License.objects.filter(account=alice.account).order_by("pk")
        license_cancel(account=alice.account, license=cancelling)
        license_change_schedule(account=alice.account, license=changing, tier="basic", period="monthly")
        body = text(logged_in(alice).get("/billing/licenses/"))

        assert f'href="{reverse("licenses:cancel_confirm", args=[first.pk])}"' in body
        assert f'href="{reverse("billing:license_change")}?license={first.pk}"' in body
        assert f'action="{reverse("licenses:undo_cancel", args=[cancelling.pk])}"' in body
        assert f'action="{reverse("licenses:undo_change", args=[changing.pk])}"' in body
        # Nothing links to another row's license: each URL holds its own row's id.
        assert body.count(f"/{first.pk}/") == body.count(f'/{first.pk}/cancel/confirm/') == 2

    def test_htmx_pages_through_as_a_fragment(self, alice):
        bulk_licenses(alice.account, 30)
        body = text(logged_in(alice).get("/billing/licenses/?page=2", headers={"HX-Request": "true"}))
        assert body.lstrip().startswith('<div id="license-table">')
        assert body.count('<tr id="license-') == 5

    @pytest.mark.parametrize("query", ["count", "page"])
    def test_the_tab_s_sql_built_once_is_the_orms_for_this_account(self, alice, query):
        """The tab's count and page come from templates (pictor_billing.compiled): each must exist and be the
        very SQL and parameters the ORM builds for this account."""
        from licenses import views

        values = {"account": alice.account.pk}
        template = views._tab_template(connection.vendor, query, views.PAGE_SIZE)
        sql, params = views._TAB_QUERIES[query](values).query.sql_with_params()
        assert template is not None and (template.sql, template.params(values)) == (sql, list(params))

    def test_without_templates_the_tab_shows_the_same_page(self, alice, monkeypatch):
        from licenses import views

        bulk_licenses(alice.account, 30)
        client = logged_in(alice)

        def shown(page):  # the rows' licenses, in order, and the page line
            body = text(client.get(f"/billing/licenses/?page={page}"))
            rows = [row.split('"')[0] for row in body.split('<tr id="license-')[1:]]
            return rows, body.split("Page ")[1].split("<")[0]

        pages = [shown(1), shown(2)]
        monkeypatch.setattr(views, "_tab_template", lambda *key: None)
        assert [shown(1), shown(2)] == pages
        assert len(pages[1][0]) == 5 and pages[1][1] == "2 of 2 (30 licenses)"

    def test_an_account_with_no_licenses_sees_the_empty_tab(self, alice):
        assert "You have no licenses yet" in text(logged_in(alice).get("/billing/licenses/?page=3"))


class TestPayAreaQueries:
    def test_the_card_and_a_payment_being_confirmed_cost_one_query_in_the_summary(
            self, prices, alice, alice_card, welcome10, django_assert_max_num_queries):
        bulk_licenses(alice.account, 1)
        client = logged_in(alice)
        summary(client, **SUMMARY)
        # The coupon, the account's purchase state, and the pay area's card with any payment being confirmed.
        with django_assert_max_num_queries(BASELINE_QUERIES + 2):
            response = summary(client, **SUMMARY)
        assert "with Visa ending 4242" in text(response)


@pytest.mark.usefixtures("prices", "alice_card")
class TestLicensesTabQueries:
    # The session, the user, the page's rows with their count (pictor_billing.paging), the Billing header
    # (one query), the next renewal (the date and bracket, the licenses due) and the price list's version.
    TAB_QUERIES = 7

    @pytest.mark.parametrize("count", [1, 1000])
    def test_the_tab_costs_a_fixed_number_of_queries_whatever_the_account_s_size(
            self, alice, django_assert_max_num_queries, count):
        bulk_licenses(alice.account, count)
        client = logged_in(alice)
        client.get("/billing/licenses/")
        with django_assert_max_num_queries(self.TAB_QUERIES):
            response = client.get("/billing/licenses/?page=2")
        assert response.status_code == 200
        assert "data-next-renewal" in text(response)

    def test_the_next_renewal_line_quotes_what_the_run_would_charge(self, alice):
        """The line's quote (counted, not loaded) equals renewal_quote's on that date: a mix of tiers and
        periods, a scheduled downgrade, a cancelled license due that day, a license due later, credit."""
        bulk_licenses(alice.account, 12)
        buy_directly(alice.account, tier="pro", period="annual", quantity=3)
        licenses = list(License.objects.filter(account=alice.account, tier="basic")[:3])
        license_change_schedule(account=alice.account, license=licenses[0], tier="basic", period="monthly")
        license_cancel(account=alice.account, license=licenses[1])
        CreditEntry.objects.create(account=alice.account, kind=CreditEntry.ADMIN_CREDIT, amount=Decimal("25.00"))

        shown = next_renewal(alice.account)
        run = renewal_quote(alice.account, shown.billing_date)

        # Every figure the line and the invoice show; the line counts licenses by shape, the run lists each.
        figures = ("billing_date", "count", "rate", "subtotal", "volume_discount", "credit_balance",
                   "credit_applied", "total_due", "lines", "quantity", "what", "service_to")
        assert {name: getattr(shown, name) for name in figures} == {name: getattr(run, name) for name in figures}
        assert len(shown.licenses) < len(run.licenses) == shown.quantity
        assert shown.count == 14  # 15 active, the cancelled one left out of the bracket
