"""Billing › Device API keys: owners create a key (shown once) and revoke it; one account's keys only."""

import re

import pytest
from django.test import Client

from accounts.api_keys import api_key_create, key_hash
from accounts.models import ApiKey
from tests.api.conftest import DeviceClient
from tests.conftest import logged_in
from tests.helpers import HTMX, csrf_token, form_token, post, text

URL = "/billing/api-keys/"
NEW_KEY = re.compile(r'id="new-api-key"[^>]*value="(pbk_[0-9a-f]{10}_[A-Za-z0-9_-]+)"')


def create(client, name="Booth 1", *, htmx=False, token=None):
    token = token or form_token(client, URL)
    return post(client, URL, {"name": name, "token": token}, htmx=htmx)


def shown_key(response) -> str:
    match = NEW_KEY.search(text(response))
    assert match, "the page shows no new key"
    return match.group(1)


def revoke_url(api_key) -> str:
    return f"{URL}{api_key.pk}/revoke/"


class TestTheKeyList:
    def test_an_anonymous_visitor_is_sent_to_log_in(self, db):
        response = Client().get(URL)
        assert response.status_code == 302
        assert response["Location"] == f"/login/?next={URL}"

    def test_it_lists_this_accounts_keys_by_name_and_prefix_only(self, alice, alice_client, charlie):
        mine, plain = api_key_create(account=alice.account, name="Front desk booth", created_by=alice)
        theirs, _ = api_key_create(account=charlie.account, name="Charlie's secret booth", created_by=charlie)

        page = text(alice_client.get(URL))

        assert "Front desk booth" in page
        assert f"pbk_{mine.prefix}_…" in page
        assert plain not in page
        assert mine.key_hash not in page
        assert "Charlie&#x27;s secret booth" not in page and theirs.prefix not in page

    def test_bob_on_alices_team_sees_her_accounts_keys(self, alice, bob):
        api_key_create(account=alice.account, name="Front desk booth", created_by=alice)
        assert "Front desk booth" in text(logged_in(bob).get(URL))

    def test_the_licenses_tab_links_to_it(self, alice_client):
        assert f'href="{URL}"' in text(alice_client.get("/billing/licenses/"))
        assert "Device API keys" in text(alice_client.get("/billing/licenses/"))


class TestCreatingAKey:
    def test_the_new_key_is_shown_once_and_works(self, alice, alice_client):
        response = create(alice_client, "Booth 7")

        assert response.status_code == 201
        plain = shown_key(response)
        assert "shown only this once" in text(response)
        api_key = ApiKey.objects.get(account=alice.account)
        assert (api_key.name, api_key.created_by, api_key.key_hash) == ("Booth 7", alice, key_hash(plain))
        assert DeviceClient(plain).get("/api/v1/balance").status_code == 200

        # Reloaded, the page shows the key's prefix, never the key.
        again = text(alice_client.get(URL))
        assert plain not in again
        assert not NEW_KEY.search(again)
        assert f"pbk_{api_key.prefix}_…" in again

    def test_the_page_showing_a_key_is_never_cached(self, alice_client):
        assert "no-store" in create(alice_client)["Cache-Control"]

    def test_with_htmx_only_the_keys_region_is_swapped(self, alice_client):
        response = create(alice_client, htmx=True)
        assert response.status_code == 201
        assert text(response).lstrip().startswith('<div id="api-keys">')
        shown_key(response)

    def test_the_same_form_posted_twice_creates_one_key_and_never_shows_it_again(self, alice, alice_client):
        token = form_token(alice_client, URL)
        first = create(alice_client, token=token)
        second = create(alice_client, token=token)

        assert (first.status_code, second.status_code) == (201, 409)
        assert ApiKey.objects.filter(account=alice.account).count() == 1
        assert shown_key(first) not in text(second)
        assert "already created" in text(second)

    def test_a_forged_form_token_creates_nothing(self, alice, alice_client):
        response = create(alice_client, token="not-a-signed-token")
        assert response.status_code == 400
        assert not ApiKey.objects.exists()

    def test_another_accounts_form_token_creates_nothing(self, alice, alice_client, charlie):
        charlies_token = form_token(logged_in(charlie), URL)
        assert create(alice_client, token=charlies_token).status_code == 400
        assert not ApiKey.objects.exists()

    @pytest.mark.parametrize("name", ["", "   ", "x" * 101])
    def test_a_key_needs_a_name_of_up_to_100_characters(self, alice_client, name):
        response = create(alice_client, name)
        assert response.status_code == 400
        assert "field-error" in text(response)
        assert not ApiKey.objects.exists()

    def test_a_post_without_the_csrf_token_is_refused(self, alice_client):
        token = form_token(alice_client, URL)
        response = alice_client.post(URL, {"name": "Booth", "token": token})
        assert response.status_code == 403
        assert not ApiKey.objects.exists()


class TestRevokingAKey:
    @pytest.fixture
    def key(self, alice):
        return api_key_create(account=alice.account, name="Old booth", created_by=alice)

    def test_it_asks_first_as_a_page_without_javascript(self, alice_client, key):
        page = text(alice_client.get(revoke_url(key[0])))
        assert "Revoke API key" in page
        assert f'action="{revoke_url(key[0])}"' in page
        assert ApiKey.objects.get(pk=key[0].pk).revoked_at is None

    def test_it_asks_first_in_a_dialog_with_htmx(self, alice_client, key):
        page = text(alice_client.get(revoke_url(key[0]), headers=HTMX))
        assert page.lstrip().startswith("<dialog")
        assert "Revoke key" in page

    def test_revoking_refuses_the_key_at_once(self, alice_client, key):
        response = post(alice_client, revoke_url(key[0]), follow=True)

        assert response.status_code == 200
        assert "is revoked" in text(response)
        assert ApiKey.objects.get(pk=key[0].pk).revoked_at is not None
        assert DeviceClient(key[1]).get("/api/v1/balance").status_code == 401
        assert "Revoked" in text(alice_client.get(URL))

    def test_revoking_twice_says_it_already_was(self, alice_client, key):
        post(alice_client, revoke_url(key[0]))
        assert "already revoked" in text(post(alice_client, revoke_url(key[0]), follow=True))

    def test_another_accounts_key_is_404_and_keeps_working(self, key, charlie):
        charlie_client = logged_in(charlie)
        assert charlie_client.get(revoke_url(key[0])).status_code == 404
        assert post(charlie_client, revoke_url(key[0])).status_code == 404
        assert ApiKey.objects.get(pk=key[0].pk).revoked_at is None
        assert DeviceClient(key[1]).get("/api/v1/balance").status_code == 200

    def test_an_anonymous_post_is_sent_to_log_in_and_revokes_nothing(self, key):
        client = Client(enforce_csrf_checks=True)
        response = client.post(revoke_url(key[0]), {"csrfmiddlewaretoken": csrf_token(client)})
        assert response.status_code == 302
        assert ApiKey.objects.get(pk=key[0].pk).revoked_at is None
