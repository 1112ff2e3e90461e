"""Token admin: staff grant or deduct tokens with a reason (never below zero); output rates are effective-dated."""

import datetime

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from tests.helpers import text
from tokens.models import OutputRate, TokenEntry, TokenSettings
from tokens.services import rates_in_force, token_balance, tokens_grant_signup

ADJUST = "/admin/tokens/tokenentry/adjust/"


@pytest.fixture
def root(db):
    return User.objects.create_superuser(email="root@pictor.example", password="x-Admin-secret-1")


@pytest.fixture
def admin_client(root):
    client = Client()
    client.force_login(root)
    return client


@pytest.fixture
def account(alice):
    tokens_grant_signup(account=alice.account)
    return alice.account


def adjust(client, account, amount, reason):
    return client.post(ADJUST, {"account": account.pk, "amount": amount, "reason": reason})


class TestAdjustTokens:
    def test_the_ledger_changelist_offers_it(self, admin_client, account):
        body = text(admin_client.get(reverse("admin:tokens_tokenentry_changelist")))
        assert f'<a href="{ADJUST}" class="addlink">Adjust tokens</a>' in body

    def test_the_page_can_start_with_an_account_chosen(self, admin_client, account):
        body = text(admin_client.get(ADJUST, {"account": account.pk}))
        assert f'<option value="{account.pk}" selected>' in body

    def test_a_grant_adds_an_entry_with_the_reason_and_who_made_it(self, admin_client, root, account):
        response = adjust(admin_client, account, 25, "  Goodwill for the outage  ")
        assert response.status_code == 302
        entry = TokenEntry.objects.get(kind=TokenEntry.ADMIN_ADJUSTMENT)
        assert (entry.account, entry.amount, entry.note, entry.created_by) == (account, 25, "Goodwill for the outage",
                                                                               root)
        assert entry.balance_after == token_balance(account) == 75
        follow = admin_client.get(response["Location"])
        assert "Granted 25 tokens to Alice Events. The balance is now 75." in text(follow)

    def test_a_deduction_takes_tokens_off(self, admin_client, root, account):
        adjust(admin_client, account, -30, "Duplicate grant")
        entry = TokenEntry.objects.get(kind=TokenEntry.ADMIN_ADJUSTMENT)
        assert (entry.amount, entry.created_by, entry.balance_after) == (-30, root, 20)
        assert token_balance(account) == 20

    def test_a_deduction_below_zero_is_refused_and_changes_nothing(self, admin_client, account):
        response = adjust(admin_client, account, -51, "Too much")
        assert response.status_code == 400
        assert ("Alice Events has 50 tokens: a deduction of 51 would take the balance below zero. "
                "Nothing was changed.") in text(response)
        assert not TokenEntry.objects.filter(kind=TokenEntry.ADMIN_ADJUSTMENT).exists()
        assert token_balance(account) == 50

    def test_a_deduction_to_exactly_zero_is_allowed(self, admin_client, account):
        assert adjust(admin_client, account, -50, "Closing the account").status_code == 302
        assert token_balance(account) == 0

    @pytest.mark.parametrize(("amount", "reason", "message"), [
        (10, "", "Give a reason: it is recorded with the adjustment."),
        (10, "   ", "Give a reason: it is recorded with the adjustment."),
        (0, "Nothing", "Enter a number of tokens other than zero."),
        ("ten", "Words", "Enter a whole number."),
        (2_000_000, "Huge", "Ensure this value is less than or equal to 1000000."),
        (10, "x" * 201, "Ensure this value has at most 200 characters (it has 201)."),
    ])
    def test_a_reason_and_a_real_amount_are_required(self, admin_client, account, amount, reason, message):
        response = adjust(admin_client, account, amount, reason)
        assert response.status_code == 400
        assert message in text(response)
        assert not TokenEntry.objects.filter(kind=TokenEntry.ADMIN_ADJUSTMENT).exists()

    def test_staff_without_the_permission_cannot_adjust(self, account):
        staff = User.objects.create_user(email="support@pictor.example", password="x", is_staff=True)
        staff.user_permissions.add(Permission.objects.get(codename="view_tokenentry"))
        client = Client()
        client.force_login(staff)
        assert client.get(ADJUST).status_code == 403
        assert adjust(client, account, 10, "Please").status_code == 403
        assert "Adjust tokens" not in text(client.get(reverse("admin:tokens_tokenentry_changelist")))
        staff.user_permissions.add(Permission.objects.get(codename="add_tokenentry"))
        client.force_login(User.objects.get(pk=staff.pk))
        assert adjust(client, account, 10, "Please").status_code == 302
        assert TokenEntry.objects.get(kind=TokenEntry.ADMIN_ADJUSTMENT).created_by == staff

    def test_a_customer_cannot_reach_it(self, account, alice):
        client = Client()
        client.force_login(alice)
        response = adjust(client, account, 1000, "Free tokens")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
        assert token_balance(account) == 50

    def test_ledger_entries_stay_read_only(self, admin_client, account):
        entry = TokenEntry.objects.get()
        body = text(admin_client.get(reverse("admin:tokens_tokenentry_change", args=[entry.pk])))
        assert 'name="_save"' not in body
        assert admin_client.post(reverse("admin:tokens_tokenentry_delete", args=[entry.pk]),
                                 {"post": "yes"}).status_code == 403
        assert TokenEntry.objects.filter(pk=entry.pk).exists()

    def test_the_customer_sees_the_adjustment_and_its_reason(self, admin_client, account, alice):
        adjust(admin_client, account, 100, "Goodwill for the outage")
        client = Client()
        client.force_login(alice)
        body = text(client.get("/billing/tokens/"))
        assert "Admin adjustment" in body and "Goodwill for the outage" in body and "+100" in body


class TestOutputRates:
    def add_rate(self, client, output_type, tokens, start):
        return client.post(reverse("admin:tokens_outputrate_add"), {
            "output_type": output_type, "tokens": tokens,
            "effective_from_0": start.strftime("%Y-%m-%d"), "effective_from_1": start.strftime("%H:%M:%S")})

    def test_a_new_rate_applies_from_its_moment_on(self, admin_client):
        start = timezone.now() + datetime.timedelta(days=1)
        response = self.add_rate(admin_client, "ai_video", 12, start)
        assert response.status_code == 302, text(response)[-2000:]
        assert rates_in_force(timezone.now())["ai_video"] == 10
        assert rates_in_force(start + datetime.timedelta(minutes=1))["ai_video"] == 12

    def test_a_rate_starting_just_now_starts_at_the_moment_it_is_saved(self, admin_client):
        before = timezone.now()
        assert self.add_rate(admin_client, "ai_image", 2, before - datetime.timedelta(minutes=5)).status_code == 302
        assert OutputRate.objects.get().effective_from >= before.replace(microsecond=0)

    def test_a_rate_cannot_start_in_the_past(self, admin_client):
        response = self.add_rate(admin_client, "ai_image", 2, timezone.now() - datetime.timedelta(days=3))
        assert response.status_code == 200
        assert "A rate applies to later usage only: choose a moment from now on." in text(response)
        assert not OutputRate.objects.exists()

    def test_a_rate_already_in_force_cannot_be_edited_or_deleted(self, admin_client):
        rate = OutputRate.objects.create(output_type="ai_image", tokens=1,
                                         effective_from=timezone.now() - datetime.timedelta(days=1))
        page = text(admin_client.get(reverse("admin:tokens_outputrate_change", args=[rate.pk])))
        assert 'name="_save"' not in page
        admin_client.post(reverse("admin:tokens_outputrate_change", args=[rate.pk]), {
            "output_type": "ai_image", "tokens": 5, "effective_from_0": "2020-01-01", "effective_from_1": "00:00:00"})
        assert admin_client.post(reverse("admin:tokens_outputrate_delete", args=[rate.pk]),
                                 {"post": "yes"}).status_code == 403
        rate.refresh_from_db()
        assert rate.tokens == 1

    def test_a_future_rate_can_still_be_changed(self, admin_client):
        start = timezone.now() + datetime.timedelta(days=7)
        rate = OutputRate.objects.create(output_type="ai_image", tokens=2, effective_from=start)
        response = admin_client.post(reverse("admin:tokens_outputrate_change", args=[rate.pk]), {
            "output_type": "ai_image", "tokens": 3, "effective_from_0": start.strftime("%Y-%m-%d"),
            "effective_from_1": start.strftime("%H:%M:%S")})
        assert response.status_code == 302
        rate.refresh_from_db()
        assert rate.tokens == 3


def test_token_settings_are_listed_and_editable_in_admin(admin_client, account):
    prefs = TokenSettings.objects.create(account=account, auto_top_up_failure="Your card was declined.")
    body = text(admin_client.get(reverse("admin:tokens_tokensettings_changelist")))
    assert "Alice Events" in body and "Your card was declined." in body
    assert admin_client.get(reverse("admin:tokens_tokensettings_change", args=[prefs.pk])).status_code == 200
    assert admin_client.get(reverse("admin:tokens_outputrate_changelist")).status_code == 200
