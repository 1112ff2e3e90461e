"""Token activity: the page behind the balance at the top right: the ledger, its filters and pages, the chart."""

import datetime
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from tests.conftest import logged_in
from tests.helpers import HTMX, text, token_balance_shown
from tests.tokens.conftest import move_to_day, spend
from tokens.models import TokenEntry, TokenSettings
from tokens.services import ledger_add, token_balance, tokens_adjust, tokens_grant_signup

URL = "/billing/tokens/"


def rows(response) -> list[int]:
    """The ledger rows on the page, as entry ids, top to bottom."""
    return [int(pk) for pk in re.findall(r'<tr data-entry="(\d+)"', text(response))]


def amounts(response) -> list[int]:
    return [int(a) for a in re.findall(r'data-amount="(-?\d+)"', text(response))]


@pytest.fixture
def alice_with_usage(alice):
    """Alice's ledger: the signup grant, then 3 AI images at booth-1 and 1 AI video at booth-2."""
    tokens_grant_signup(account=alice.account)
    spend(alice.account, "ai_image", 3, event_id="booth-1")
    spend(alice.account, "ai_video", 1, event_id="booth-2")
    return alice


class TestAccess:
    def test_the_owner_and_a_teammate_can_open_it(self, alice_with_usage, bob):
        for user in (alice_with_usage, bob):
            response = logged_in(user).get(URL)
            assert response.status_code == 200
            assert "Token activity" in text(response)
            assert len(rows(response)) == 3

    def test_another_account_sees_only_its_own_ledger(self, alice_with_usage, charlie):
        tokens_grant_signup(account=charlie.account)
        response = logged_in(charlie).get(URL)
        assert rows(response) == list(TokenEntry.objects.filter(account=charlie.account).values_list("pk", flat=True))
        assert len(rows(response)) == 1
        assert "booth-1" not in text(response)
        assert rows(logged_in(charlie).get(URL, {"event": "booth-1"})) == []

    def test_a_user_without_an_account_gets_404(self, db):
        staff = User.objects.create_user(email="staff@pictor.example", password="x", is_staff=True)
        client = Client()
        client.force_login(staff)
        assert client.get(URL).status_code == 404

    def test_an_anonymous_visitor_is_sent_to_log_in(self, db):
        response = Client().get(URL + "?kind=usage")
        assert response.status_code == 302
        assert response["Location"] == "/login/?next=/billing/tokens/%3Fkind%3Dusage"

    def test_an_anonymous_htmx_request_sends_the_whole_page_to_log_in(self, db):
        response = Client().get(URL, headers={**HTMX, "HX-Current-URL": "http://testserver/billing/tokens/"})
        assert response["HX-Redirect"].startswith("/login/?next=")


class TestBalance:
    def test_the_balance_at_the_top_right_links_to_token_activity(self, alice, alice_client):
        tokens_grant_signup(account=alice.account)
        body = text(alice_client.get("/billing/invoices/"))
        assert re.search(r'<a class="balance-link" href="/billing/tokens/">\s*<span class="balance-figure" '
                         r'data-token-balance="50"><strong>50</strong> tokens</span>', body)

    def test_the_balance_shown_is_the_ledger_sum_and_the_newest_rows_balance_after(self, alice_with_usage):
        client = logged_in(alice_with_usage)
        response = client.get(URL)
        ledger_sum = TokenEntry.objects.filter(account=alice_with_usage.account).balance()
        assert ledger_sum == 50 - 3 - 10 == 37
        assert token_balance_shown(client, URL) == token_balance(alice_with_usage.account) == ledger_sum
        first_row_balance = re.search(r'data-balance-after="(\d+)"', text(response)).group(1)
        assert int(first_row_balance) == 37

    def test_a_balance_below_the_alert_is_flagged_for_eyes_and_screen_readers(self, alice, alice_client):
        tokens_grant_signup(account=alice.account)
        spend(alice.account, "ai_image", 31)  # 19 left, below the default alert at 20
        body = text(alice_client.get("/billing/licenses/"))
        assert 'class="balance-link balance-low"' in body
        assert '<span class="flag flag-danger" data-low-balance aria-hidden="true">Low</span>' in body
        assert '<span class="visually-hidden">: low balance, below your alert at 20 tokens</span>' in body

    def test_a_balance_at_the_alert_is_not_flagged(self, alice, alice_client):
        tokens_grant_signup(account=alice.account)
        spend(alice.account, "ai_image", 30)  # exactly 20
        assert "data-low-balance" not in text(alice_client.get("/billing/licenses/"))

    def test_the_flag_follows_the_owners_own_threshold(self, alice, alice_client):
        tokens_grant_signup(account=alice.account)
        TokenSettings.objects.create(account=alice.account, low_balance_threshold=100)
        body = text(alice_client.get("/billing/licenses/"))
        assert "data-low-balance" in body
        assert "below your alert at 100 tokens" in body


class TestLedger:
    def test_it_lists_entries_newest_first_with_their_columns(self, alice_with_usage):
        response = logged_in(alice_with_usage).get(URL)
        assert response.status_code == 200
        entries = list(TokenEntry.objects.filter(account=alice_with_usage.account).order_by("-id"))
        assert rows(response) == [e.pk for e in entries]
        assert amounts(response) == [-10, -3, 50]
        body = text(response)
        assert "AI video × 1" in body and "AI image × 3" in body
        assert "−10" in body and "+50" in body
        assert "Welcome to Pictor" in body
        assert '<a href="?event=booth-2"' in body

    def test_a_top_up_row_names_its_invoice(self, alice, alice_client, alice_card, packages):
        from tests.helpers import TOP_UP_URL, post, top_up_data

        post(alice_client, TOP_UP_URL, top_up_data(alice_client, packages[0]))
        entry = TokenEntry.objects.get(kind=TokenEntry.TOP_UP)
        body = text(alice_client.get(URL))
        assert f'invoice <a href="/billing/invoices/{entry.invoice.number}.pdf">{entry.invoice.number}</a>' in body

    def test_it_shows_25_entries_a_page(self, alice, alice_client):
        tokens_grant_signup(account=alice.account)
        for _ in range(29):
            spend(alice.account, "ai_image", 1)
        newest_first = list(TokenEntry.objects.filter(account=alice.account).order_by("-id")
                            .values_list("pk", flat=True))
        first = alice_client.get(URL)
        assert rows(first) == newest_first[:25]
        assert "Page 1 of 2" in text(first)
        assert 'href="?page=2" rel="next"' in text(first)
        second = alice_client.get(URL, {"page": 2})
        assert rows(second) == newest_first[25:]
        assert 'href="?page=1" rel="prev"' in text(second)

    @pytest.mark.parametrize("page", ["abc", "0", "-1", "999", "1.5", "9" * 40])
    def test_a_bad_page_number_shows_a_page_anyway(self, alice_with_usage, page):
        response = logged_in(alice_with_usage).get(URL, {"page": page})
        assert response.status_code == 200
        assert len(rows(response)) == 3

    def test_it_filters_by_kind(self, alice_with_usage):
        response = logged_in(alice_with_usage).get(URL, {"kind": "usage"})
        assert response.status_code == 200
        assert amounts(response) == [-10, -3]

    def test_it_filters_by_event_and_pages_keep_the_filter(self, alice_with_usage):
        account = alice_with_usage.account
        for _ in range(26):
            spend(account, "ai_image", 1, event_id="gala")
        client = logged_in(alice_with_usage)
        response = client.get(URL, {"event": "gala", "kind": "usage"})
        assert len(rows(response)) == 25
        assert 'href="?event=gala&amp;kind=usage&amp;page=2"' in text(response)
        second = client.get(URL, {"event": "gala", "kind": "usage", "page": 2})
        assert len(rows(second)) == 1
        only = client.get(URL, {"event": "booth-1"})
        assert amounts(only) == [-3]

    def test_an_event_filter_that_matches_nothing_says_so(self, alice_with_usage):
        response = logged_in(alice_with_usage).get(URL, {"event": "no-such-event"})
        assert response.status_code == 200
        assert "No entries match these filters." in text(response)

    @pytest.mark.parametrize(("params", "message"), [
        ({"kind": "refund"}, "Unknown kind “refund”: choose one from the list."),
        ({"kind": "<script>"}, "Unknown kind “&lt;script&gt;”"),
        ({"event": "x" * 101}, "An event id has at most 100 characters."),
    ])
    def test_a_bad_filter_is_a_400_that_says_why_and_shows_everything(self, alice_with_usage, params, message):
        response = logged_in(alice_with_usage).get(URL, params)
        assert response.status_code == 400
        body = text(response)
        assert message in body
        assert "Showing all activity instead." in body
        assert len(rows(response)) == 3

    def test_the_page_runs_the_same_number_of_queries_for_3_or_60_entries(self, alice_with_usage, today):
        client = logged_in(alice_with_usage)
        client.get(URL)  # warm the session
        with CaptureQueriesContext(connection) as few:
            client.get(URL)
        account = alice_with_usage.account
        tokens_adjust(account=account, amount=1000, reason="Enough for the test", user=None)
        for day in range(56):
            result = spend(account, ("ai_image", "ai_video")[day % 2], 1, event_id=f"event-{day % 7}")
            move_to_day(result.body["entry_id"], today - datetime.timedelta(days=day % 30))
        with CaptureQueriesContext(connection) as many:
            response = client.get(URL, {"page": 2})
        assert len(rows(response)) == 25
        assert len(many) == len(few), [q["sql"][:120] for q in many]
        assert len(few) <= 15  # session, user, header (balance, settings, past due, card), ledger, chart, form


class TestChart:
    def test_it_shows_tokens_used_per_day_by_output_type(self, alice, alice_client, today):
        account = alice.account
        tokens_adjust(account=account, amount=500, reason="Pilot", user=None)
        two_days_ago = today - datetime.timedelta(days=2)
        for output_type, quantity, day in [("ai_image", 4, today), ("ai_image", 2, today), ("ai_video", 3, today),
                                           ("ai_image", 7, two_days_ago), ("photo", 9, two_days_ago)]:
            move_to_day(spend(account, output_type, quantity).body["entry_id"], day)
        body = text(alice_client.get(URL))

        assert '<svg viewBox="0 0 720 240" role="img" aria-labelledby="usage-chart-title"' in body
        assert '<title id="usage-chart-title">Tokens used per day over the last 30 days</title>' in body
        # Today: 4 + 2 AI images = 6, 3 AI videos = 30 tokens: 36. Two days ago: 7 AI images (photos are free).
        assert f'data-day="{today:%Y-%m-%d}" data-total="36"' in body
        assert f'data-day="{two_days_ago:%Y-%m-%d}" data-total="7"' in body
        assert len(re.findall(r'data-day="[\d-]+" data-total=', body)) == 2
        assert 'data-output-type="ai_video" data-tokens="30"' in body
        assert 'data-output-type="ai_image" data-tokens="6"' in body
        assert "AI image: 13 tokens" in body and "AI video: 30 tokens" in body
        table = re.search(r"<table class=\"visually-hidden\" data-chart-table>.*?</table>", body, re.S).group(0)
        assert re.findall(r"<td>(\d+)</td>", table) == ["0", "7", "7", "30", "6", "36"]  # video, image, total

    def test_usage_older_than_30_days_and_other_entries_are_not_counted(self, alice, alice_client, today):
        account = alice.account
        tokens_grant_signup(account=account)
        move_to_day(spend(account, "ai_image", 5).body["entry_id"], today - datetime.timedelta(days=30))
        move_to_day(spend(account, "ai_image", 2).body["entry_id"], today - datetime.timedelta(days=29))
        ledger_add(account=account, kind=TokenEntry.ADMIN_ADJUSTMENT, amount=-4, note="correction")
        body = text(alice_client.get(URL))
        assert re.findall(r'data-day="([\d-]+)" data-total="(\d+)"', body) == [
            (f"{today - datetime.timedelta(days=29):%Y-%m-%d}", "2")]

    def test_with_no_usage_it_shows_an_empty_state_instead(self, alice, alice_client):
        tokens_grant_signup(account=alice.account)
        spend(alice.account, "photo", 12)  # free: no tokens used
        body = text(alice_client.get(URL))
        assert "<svg viewBox" not in body
        assert "No tokens were used in the last 30 days." in body
